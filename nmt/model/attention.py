"""Attention: the `Attention` protocol the decoder calls, one class per score, and their registry.

A new score is one class here that satisfies `Attention`, plus its name in `ATTENTIONS` and in
`ModelConfig.attention`.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import keras
from keras import ops

from nmt.config.options import ModelConfig


@runtime_checkable
class Attention(Protocol):
    """What the decoder needs of an attention (a Keras layer named "attention").

    Usage:
        attention = ATTENTIONS[config.attention].for_model(config)
        attention.build((None, Q), values_shape=(None, None, M))
        keys = attention.project_keys(memory)            # once per sentence
        cast = attention.step_weights()                  # once per sequence of steps
        context, weights = attention(query, keys, memory, mask, cast)
        # beam search: R consecutive query rows per memory row, one copy of each sentence's memory
        context, weights = attention(queries, keys, memory, mask, cast, rows_per_memory=R)
    """

    @classmethod
    def for_model(cls, config: ModelConfig) -> Attention:
        """The layer for a model's options, named "attention" (its path in weights files)."""

    def build(self, query_shape, keys_shape=None, values_shape=None, mask_shape=None): ...

    def project_keys(self, memory):
        """[B, S, M] memory -> float32 [B, S, K] keys, computed once per sentence."""

    def step_weights(self) -> dict:
        """The weights a step multiplies by, cast once: to the compute dtype, or to float32
        for what the step computes in float32 (may be empty)."""

    def __call__(self, query, keys, values, mask, weights: dict | None = None,
                 rows_per_memory: int = 1):
        """query [B*R, Q], keys from `project_keys`, values [B, S, M] memory, mask bool [B, S]
        (True at real tokens) -> context [B*R, M], float32 weights [B*R, S] (rows sum to 1;
        padding gets exactly zero weight). R = `rows_per_memory` consecutive query rows attend to
        each memory row: beam search's hypotheses of a sentence share one copy of its memory.
        The values enter only as the context, the returned weights (cast to the values' dtype)
        times the values (`_attend`): training stops the values' gradient inside the decoder
        loop and takes it from the returned weights after it."""


# At R = 1 (training, greedy search) the helpers keep tensors as they are: the broadcasts of
# the grouped form cost a training step 1-2 %.
def _by_memory_row(rows, r: int):
    """[B*R, D] query rows -> [B, R, D], the R rows of each memory row together."""
    return rows if r == 1 else ops.reshape(rows, (-1, r, rows.shape[-1]))


def _for_each_row(memory, r: int):
    """[B, ...] per memory row -> [B, 1, ...], broadcast across its R query rows."""
    return memory if r == 1 else memory[:, None]


def _attend(scores, values, mask, r: int):
    """float32 scores [B, (R,) S] -> (context [B*R, M], weights [B*R, S]), padding at exactly
    zero."""
    # exp(-1e9 - max) underflows to exactly 0 in float32, so padding gets zero weight.
    weights = ops.softmax(ops.where(_for_each_row(mask, r), scores, -1e9), axis=-1)
    # An [R, S] x [S, M] product per sentence, accumulated in float32 even in bfloat16: its R
    # rows read the values once.
    context = ops.einsum("bs,bsm->bm" if r == 1 else "brs,bsm->brm",
                         ops.cast(weights, values.dtype), values)
    if r == 1:
        return context, weights
    return (ops.reshape(context, (-1, values.shape[-1])),
            ops.reshape(weights, (-1, ops.shape(values)[1])))


class _AttentionLayer(keras.layers.Layer):
    """Keys stay float32 (see `project_keys`): Keras must not cast the call's arguments."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True


@keras.saving.register_keras_serializable(package="nmt")
class AdditiveAttention(_AttentionLayer):
    """Bahdanau attention, score(s, h) = v^T tanh(W_q s + W_k h), keys W_k h projected once.

    Written out rather than `keras.layers.AdditiveAttention`, which has no query/key projections
    and would redo the key side at every decoder step.

    Args:
        units: attention width A (the keys are [B, S, A]).
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    @classmethod
    def for_model(cls, config: ModelConfig):
        return cls(config.attention_units, name="attention")

    def build(self, query_shape, keys_shape=None, values_shape=None, mask_shape=None):
        self.query_kernel = self.add_weight((query_shape[-1], self.units), name="query_kernel",
                                            initializer="glorot_uniform")
        self.key_kernel = self.add_weight((values_shape[-1], self.units), name="key_kernel",
                                          initializer="glorot_uniform")
        # Read as float32 under mixed precision too (no autocast): the energies are float32.
        self.energy = self.add_weight((self.units,), name="energy", initializer="glorot_uniform",
                                      autocast=False)
        self.built = True

    def project_keys(self, memory):
        """[B, S, M] memory -> float32 [B, S, A] keys. The energies computed from them each step
        are float32 in any precision: elementwise bfloat16 is coarse, and slower on CPUs."""
        # Called as a method, outside __call__'s autocast: cast for mixed precision.
        return ops.cast(ops.matmul(memory, ops.cast(self.key_kernel, memory.dtype)), "float32")

    def step_weights(self) -> dict:
        return {"query_kernel": ops.cast(self.query_kernel, self.compute_dtype),
                "energy": ops.cast(self.energy, "float32")}

    def call(self, query, keys, values, mask, weights=None, rows_per_memory=1):
        r = rows_per_memory
        weights = weights or self.step_weights()
        projected = ops.matmul(ops.cast(query, self.compute_dtype), weights["query_kernel"])
        projected = _by_memory_row(ops.cast(projected, "float32"), r)  # [B, (R,) A]
        hidden = ops.tanh(_for_each_row(keys, r) + projected[..., None, :])  # [B, (R,) S, A]
        scores = ops.tensordot(hidden, weights["energy"], 1)  # [B*R*S, A] x [A]
        return _attend(scores, values, mask, r)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package="nmt")
class MultiplicativeAttention(_AttentionLayer):
    """Luong's "general" attention, score(s, h) = s^T W h, keys W h projected once.

    A step then costs one dot product per source position; there is no attention width (the keys
    are as wide as the query, U).
    """

    @classmethod
    def for_model(cls, config: ModelConfig):
        return cls(name="attention")

    def build(self, query_shape, keys_shape=None, values_shape=None, mask_shape=None):
        self.kernel = self.add_weight((values_shape[-1], query_shape[-1]), name="kernel",
                                      initializer="glorot_uniform")
        self.built = True

    def project_keys(self, memory):
        """[B, S, M] memory -> float32 [B, S, U] keys W h; the scores are float32 dot products."""
        return ops.cast(ops.matmul(memory, ops.cast(self.kernel, memory.dtype)), "float32")

    def step_weights(self) -> dict:
        return {}

    def call(self, query, keys, values, mask, weights=None, rows_per_memory=1):
        r = rows_per_memory
        scores = ops.einsum("bsu,bu->bs" if r == 1 else "bsu,bru->brs", keys,
                            _by_memory_row(ops.cast(query, "float32"), r))
        return _attend(scores, values, mask, r)


ATTENTIONS = {"additive": AdditiveAttention, "multiplicative": MultiplicativeAttention}
