"""The training step that Keras `fit` runs: masked cross-entropy with label smoothing.

A thin `keras.Model` around the `Seq2Seq`, so the translation model itself stays free of training
code. One cross-entropy computation per batch gives the loss, the per-token negative
log-likelihood and the token count (compiled Keras losses and metrics would each compute their
own). Padding (id 0) never counts.
"""
from __future__ import annotations

import keras
import tensorflow as tf

from vocab import PAD


def token_losses(targets, logits, label_smoothing: float = 0.0):
    """Sums over the real target tokens of a batch: (training loss, NLL, token count).

    Label smoothing spreads `label_smoothing` of the target mass uniformly over the vocabulary:
    loss = (1 - e) * nll + e * mean_v(-log p_v), where mean_v(-log p_v) = nll + z_y - mean(z).
    """
    targets = tf.cast(targets, tf.int32)
    logits = tf.cast(logits, tf.float32)
    mask = tf.cast(tf.not_equal(targets, PAD), tf.float32)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
    loss = nll
    if label_smoothing:
        target_logit = tf.gather(logits, targets, batch_dims=2)
        uniform = nll + target_logit - tf.reduce_mean(logits, axis=-1)
        loss = (1.0 - label_smoothing) * nll + label_smoothing * uniform
    return tf.reduce_sum(loss * mask), tf.reduce_sum(nll * mask), tf.reduce_sum(mask)


class TokenMean(keras.metrics.Metric):
    """A sum over tokens divided by the number of tokens, accumulated over an epoch."""

    def __init__(self, name, **kwargs):
        super().__init__(name=name, **kwargs)
        self.total = self.add_variable((), initializer="zeros", name="total")
        self.count = self.add_variable((), initializer="zeros", name="count")

    def update_state(self, total, count):
        self.total.assign_add(total)
        self.count.assign_add(count)

    def result(self):
        return self.total / tf.maximum(self.count, 1.0)


class Seq2SeqTrainer(keras.Model):
    """Runs a `Seq2Seq` under `fit`/`evaluate`; logs loss, nll (per token) and target_tokens.

    Args:
        seq2seq: the model to train (already built).
        label_smoothing: see `token_losses`.
        token_budget: 0: the loss of a batch is its mean over its tokens. Else the batches are
            filled up to this many target tokens, and the loss is their sum divided by it: every
            token weighs the same, also in a batch left partly filled at the end of a bucket.
    """

    def __init__(self, seq2seq, label_smoothing: float = 0.0, token_budget: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.seq2seq = seq2seq
        self.label_smoothing = label_smoothing
        self.token_budget = token_budget
        self.loss_mean = TokenMean("loss")
        self.nll_mean = TokenMean("nll")
        self.tokens = keras.metrics.Sum(name="target_tokens")
        self.built = True

    @property
    def metrics(self):
        return [self.loss_mean, self.nll_mean, self.tokens]

    def call(self, inputs, training=False):
        return self.seq2seq(inputs, training=training)

    def train_step(self, data):
        inputs, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.seq2seq.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.seq2seq(inputs, training=True)
            with tf.name_scope("loss"):  # scopes name the parts in `nmt bench profile`
                loss_sum, nll_sum, count = token_losses(targets, logits, self.label_smoothing)
            # apply_gradients sums over replicas: each replica's share of the global objective.
            if self.token_budget:
                loss = loss_sum / self.token_budget
            else:
                loss = (loss_sum / tf.maximum(count, 1.0)
                        / self.distribute_strategy.num_replicas_in_sync)
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, variables)
        with tf.name_scope("optimizer"):
            self.optimizer.apply_gradients(zip(gradients, variables))
        return self._update_metrics(loss_sum, nll_sum, count)

    def test_step(self, data):
        inputs, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
        logits = self.seq2seq(inputs, training=False)
        return self._update_metrics(*token_losses(targets, logits, self.label_smoothing))

    def _update_metrics(self, loss_sum, nll_sum, count):
        self.loss_mean.update_state(loss_sum, count)
        self.nll_mean.update_state(nll_sum, count)
        self.tokens.update_state(count)
        results = {metric.name: metric.result() for metric in self.metrics}
        if isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # Keras averages step outputs across workers along axis 0, which scalars lack.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3 `fit` under a tf.distribute strategy first reduces a sample batch across
        # workers to build unbuilt state, which fails for nested batches under
        # MultiWorkerMirroredStrategy (keras-team/keras#20329). Everything here is built at
        # construction, and compile() gets no loss or metric objects: there is nothing to build.
        return None
