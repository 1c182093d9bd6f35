"""Training objective and token-level metrics over padded target batches (PAD = 0 is ignored)."""
from __future__ import annotations

import keras
import tensorflow as tf

from vocab import PAD


def _token_nll(targets, logits):
    """Per-position negative log-likelihood [B, T] and the real-token mask [B, T] (float)."""
    mask = tf.cast(tf.not_equal(targets, PAD), logits.dtype)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(targets, tf.int32),
                                                         logits=logits)
    return nll, mask


@keras.saving.register_keras_serializable(package="nmt")
class MaskedCrossEntropy(keras.losses.Loss):
    """Cross-entropy averaged over the real target tokens of a batch, with label smoothing.

    Smoothing spreads `label_smoothing` of the target mass uniformly over the vocabulary:
    loss = (1 - e) * nll + e * mean_v(-log p_v), and mean_v(-log p_v) = nll + z_y - mean(z).
    """

    def __init__(self, label_smoothing=0.0, name="masked_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        nll, mask = _token_nll(y_true, y_pred)
        loss = nll
        if self.label_smoothing:
            target_logit = tf.gather(y_pred, tf.cast(y_true, tf.int32), batch_dims=2)
            uniform = nll + target_logit - tf.reduce_mean(y_pred, axis=-1)
            loss = (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform
        return tf.reduce_sum(loss * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


class TokenNLL(keras.metrics.Metric):
    """Mean negative log-likelihood per real target token over an epoch (perplexity = exp)."""

    def __init__(self, name="nll", **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        nll, mask = _token_nll(y_true, y_pred)
        self.total.assign_add(tf.reduce_sum(nll * mask))
        self.count.assign_add(tf.reduce_sum(mask))

    def result(self):
        return self.total / tf.maximum(self.count, 1.0)


class TargetTokens(keras.metrics.Metric):
    """Number of real target tokens seen in the epoch (for tokens per second)."""

    def __init__(self, name="target_tokens", **kwargs):
        super().__init__(name=name, **kwargs)
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.count.assign_add(tf.reduce_sum(tf.cast(tf.not_equal(y_true, PAD), "float32")))

    def result(self):
        # A copy: Keras reads training logs after validation has reset this metric's variable.
        return tf.identity(self.count)
