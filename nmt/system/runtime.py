"""Starting TensorFlow: quietly, with a chosen number of threads. The only place it is imported
on behalf of the command line, so that `nmt --help` and `nmt bleu` never pay for it."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile


def import_tensorflow(threads: int | None = None):
    """Imports TensorFlow and Keras with their C++ start-up chatter hidden; returns `tf`.

    TensorFlow prints device probing messages straight to file descriptor 2 before its logging is
    configured, so stderr is redirected while it loads (`quiet_stderr`). `threads` (if given)
    bounds the intra- and inter-op thread pools, and must be set before any op runs.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    already = "tensorflow" in sys.modules
    with quiet_stderr():
        import keras  # noqa: F401
        import tensorflow as tf
        if not already:
            tf.get_logger().setLevel("ERROR")
            if threads:
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(threads)
            tf.config.list_physical_devices()  # probes devices now, while stderr is captured
    return tf


@contextlib.contextmanager
def quiet_stderr():
    """File descriptor 2 into a temporary file while the block runs (TensorFlow's C++ code
    writes there whatever the log level); the file is shown if the block fails."""
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def thread_count() -> int:
    """The intra-op threads TensorFlow uses (0 = its default: all cores)."""
    import tensorflow as tf
    return tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count() or 1


def seconds_since_start() -> float | None:
    """Seconds since this process started (from Linux's /proc: the command's start, before the
    interpreter loaded), or None where that is not known."""
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rpartition(")")[2].split()  # the name may hold spaces
        with open("/proc/uptime", encoding="ascii") as handle:
            uptime = float(handle.read().split()[0])
        return uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return None


def peak_rss_mib() -> float:
    """The most memory this process has held (resident), in MiB."""
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
