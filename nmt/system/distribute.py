"""tf.distribute strategies for `train.distribution`, CPU replicas (`train.replicas`), and which
process is the chief."""
from __future__ import annotations

import json
import os

from nmt.errors import ConfigError


def use_cpu_replicas(replicas: int, threads: int | None = None) -> None:
    """Splits the CPU into `replicas` logical devices, which `MirroredStrategy` then trains on in
    parallel: each replica's ops run one at a time on an inter-op thread of their own (`threads`
    of them, default all cores), each op on threads // replicas intra-op threads.

    Must come before TensorFlow runs its first op (the devices are fixed then); 1 changes nothing.
    """
    from nmt.system import runtime
    tf = runtime.import_tensorflow(threads)
    if replicas == 1:
        return
    cpu, = tf.config.list_physical_devices("CPU")
    wanted = [tf.config.LogicalDeviceConfiguration()] * replicas
    if tf.config.get_logical_device_configuration(cpu) == wanted:
        return
    total = threads or os.cpu_count() or 1
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
        tf.config.threading.set_intra_op_parallelism_threads(max(1, total // replicas))
        tf.config.threading.set_inter_op_parallelism_threads(total)
    except RuntimeError:  # the context exists: its devices and thread pools are fixed
        raise ConfigError(f"train.replicas: {replicas} must be set before TensorFlow starts in "
                          f"this process (it already runs on one CPU device)") from None


def make_strategy(kind: str):
    """default: one device; mirrored: all local GPUs, or the logical CPU devices (one per
    `train.replicas`); multi_worker: from TF_CONFIG."""
    import tensorflow as tf
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy()
    if kind == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief() -> bool:
    """Whether this process writes checkpoints and logs: the chief, else worker 0, else alone."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = tf_config.get("task")
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return (task.get("type") == "worker" and int(task.get("index", 0)) == 0
            and "chief" not in tf_config.get("cluster", {}))


def worker_count() -> int:
    """The processes training together: TF_CONFIG's chief and workers (1 without TF_CONFIG)."""
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster", {})
    return max(1, len(cluster.get("chief", ())) + len(cluster.get("worker", ())))
