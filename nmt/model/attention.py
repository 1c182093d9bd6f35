"""Additive (Bahdanau) attention: score(s, h) = v^T tanh(W_q s + W_k h)."""
from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="nmt")
class AdditiveAttention(keras.layers.Layer):
    """Bahdanau attention with the keys projected once per sentence.

    Written out rather than `keras.layers.AdditiveAttention`, which has no query/key projections
    and would redo the key side at every decoder step.

    Args:
        units: attention width A.

    Usage:
        keys = attention.project_keys(memory)            # [B, S, A], once per sentence
        context, weights = attention(query, keys, memory, mask)

    Call arguments:
        query: [B, Q] decoder state.
        keys: [B, S, A] from `project_keys`.
        values: [B, S, M] encoder memory.
        mask: bool [B, S], True at real tokens; padding gets exactly zero weight.

    Returns:
        context [B, M] (the weighted sum of values) and weights [B, S] (rows sum to 1).
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        # Keys stay float32 (see project_keys): no casting of the arguments by Keras.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

    def build(self, query_shape, keys_shape=None, values_shape=None, mask_shape=None):
        self.query_kernel = self.add_weight((query_shape[-1], self.units), name="query_kernel",
                                            initializer="glorot_uniform")
        self.key_kernel = self.add_weight((values_shape[-1], self.units), name="key_kernel",
                                          initializer="glorot_uniform")
        self.energy = self.add_weight((self.units,), name="energy", initializer="glorot_uniform")
        self.built = True

    def project_keys(self, memory):
        """[B, S, M] memory -> float32 [B, S, A] keys. The energies computed from them each step
        are float32 in any precision: elementwise bfloat16 is coarse, and slower on CPUs."""
        # Called as a method, outside __call__'s autocast: cast for mixed precision.
        return ops.cast(ops.matmul(memory, ops.cast(self.key_kernel, memory.dtype)), "float32")

    def call(self, query, keys, values, mask, query_kernel=None):
        # query_kernel: the kernel already in the compute dtype (see AttentionDecoder.step_weights)
        kernel = self.query_kernel if query_kernel is None else query_kernel
        projected = ops.matmul(ops.cast(query, self.compute_dtype), kernel)
        hidden = ops.tanh(keys + ops.cast(projected, "float32")[:, None, :])
        scores = ops.tensordot(hidden, ops.cast(self.energy, "float32"), 1)  # [B*S, A] x [A]
        # exp(-1e9 - max) underflows to exactly 0 in float32, so padding gets zero weight.
        scores = ops.where(mask, scores, -1e9)
        weights = ops.softmax(scores, axis=-1)
        # A [1, S] x [S, M] product per sentence: accumulated in float32 even in bfloat16.
        context = ops.einsum("bs,bsm->bm", ops.cast(weights, values.dtype), values)
        return context, weights

    def get_config(self):
        return {**super().get_config(), "units": self.units}
