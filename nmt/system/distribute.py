"""tf.distribute strategies for `train.distribution`, and which process is the chief."""
from __future__ import annotations

import json
import os


def make_strategy(kind: str):
    """default: one device; mirrored: all local GPUs (or the CPU); multi_worker: from TF_CONFIG."""
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
