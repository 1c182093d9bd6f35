"""Weights files (HDF5): written atomically with the disk's space checked first, loaded with
one-line errors for truncated, corrupt or foreign files."""
from __future__ import annotations

import atexit
import contextlib
import errno
import gc
import io
import math
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from nmt.errors import ModelDirError, OutputError
from nmt.files.textio import atomic_path, reported_as_output_error


def save_weights(model, path: Path) -> None:
    """Writes a model's weights atomically (a compiled model's include its optimizer state).

    HDF5 does not survive a full disk: it repeats the error from the destructor of each object
    of the half-written file and crashes in its exit handler. So the space is checked first, and
    if a write fails all the same, the process leaves without running that handler.
    """
    _check_space(model, path)
    try:
        with atomic_path(path, suffix=".weights.h5") as tmp, _quiet_h5py_destructors():
            model.save_weights(tmp)
    except OutputError:
        atexit.register(_exit_skipping_hdf5_handler)
        raise


def _check_space(model, path: Path) -> None:
    """Raises OutputError if the weights would not fit on the disk of `path` (with a margin)."""
    variables = list(model.weights) + list(getattr(getattr(model, "optimizer", None),
                                                   "variables", []))
    needed = 1.1 * sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables) \
        + (1 << 20)
    folder = path.parent
    with reported_as_output_error(path):
        folder.mkdir(parents=True, exist_ok=True)
        disk = os.statvfs(folder)
    if disk.f_bavail * disk.f_frsize < needed:
        raise OutputError(f"cannot write ({os.strerror(errno.ENOSPC)}: {needed / 2**20:.1f} MiB "
                          f"needed, {disk.f_bavail * disk.f_frsize / 2**20:.1f} MiB free)",
                          str(path))


@contextlib.contextmanager
def _quiet_h5py_destructors() -> Iterator[None]:
    """Holds back what is printed while the weights are written: if the write fails, that is
    h5py's destructors repeating its error (Cython prints their tracebacks to sys.stderr)."""
    previous_stderr, previous_hook = sys.stderr, sys.unraisablehook
    sys.stderr, sys.unraisablehook = io.StringIO(), lambda unraisable: None
    try:
        yield
        previous_stderr.write(sys.stderr.getvalue())
    finally:
        gc.collect()  # the failed file's objects go now, while their complaints are held back
        sys.stderr, sys.unraisablehook = previous_stderr, previous_hook


def _exit_skipping_hdf5_handler() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def load_weights(model, path: Path) -> None:
    """Loads a weights file into `model`; ModelDirError naming the file if it is missing,
    unreadable, from another model, or holds values that are not finite."""
    if not path.is_file():
        raise ModelDirError("no such weights file", str(path))
    try:
        model.load_weights(path)
    except Exception as err:  # h5py and Keras raise many types for truncated or foreign files
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ModelDirError(f"cannot load weights, the file is truncated, corrupt or from "
                            f"another model ({reason})", str(path)) from None
    damaged = [v.path for v in model.weights if not np.isfinite(
        np.asarray(v.numpy(), dtype=np.float32)).all()]
    if damaged:  # bit rot, a half-overwritten copy or a diverged run: every line would be ""
        raise ModelDirError(f"damaged weights: values that are not finite (NaN or infinity) in "
                            f"{len(damaged)} array(s), e.g. {damaged[0]}", str(path))
