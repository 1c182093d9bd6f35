"""Numeric precision: Keras dtype policies, and whether this CPU multiplies bfloat16 natively.

Training precisions (`train.precision`) are Keras policies: float32 variables and optimizer, and
with "mixed_bfloat16" / "mixed_float16" 16-bit matrix products. Translation precisions
(`decode.precision`, `--precision`) are "float32" and "bfloat16": the weights themselves are
cast, once, when the model is built. Either way the model keeps in float32 what needs range or
precision: the LSTM cell state, the attention softmax, the logits and log-softmax, the loss.
"""
from __future__ import annotations

import contextlib
import logging

log = logging.getLogger("nmt")

# The CPU flags (Linux /proc/cpuinfo) of bfloat16 matrix instructions.
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_warned: set = set()


def cpu_bf16_support(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """Which of BF16_FLAGS this CPU has (empty if none, or if cpuinfo cannot be read)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [flag for flag in BF16_FLAGS if flag in flags]
    except OSError:
        pass
    return []


def warn_if_slow(precision: str) -> None:
    """Says once per process on stderr when a 16-bit precision will be slower than float32."""
    if precision in _warned:
        return
    if "bfloat16" in precision and not cpu_bf16_support():
        log.warning("nmt: warning: this CPU has no bfloat16 matrix instructions (%s): %s runs, "
                    "but slower than float32", " or ".join(BF16_FLAGS), precision)
    elif "float16" in precision and "bfloat16" not in precision and not _has_gpu():
        log.warning("nmt: warning: %s on a CPU is slow (it is meant for GPUs); on a CPU use "
                    "float32, or mixed_bfloat16 where the CPU has %s", precision,
                    " or ".join(BF16_FLAGS))
    else:
        return
    _warned.add(precision)


def _has_gpu() -> bool:
    import tensorflow as tf
    return bool(tf.config.list_physical_devices("GPU"))


@contextlib.contextmanager
def dtype_policy(precision: str):
    """Builds the layers created inside with the Keras policy `precision`, then restores the
    previous global policy (layers take it when built)."""
    import keras

    warn_if_slow(precision)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
