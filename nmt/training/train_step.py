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
    loss = (1 - e) * nll + e * mean_v(-log p_v) (`smoothed_cross_entropy`).
    """
    targets = tf.cast(targets, tf.int32)
    logits = tf.cast(logits, tf.float32)
    mask = tf.cast(tf.not_equal(targets, PAD), tf.float32)
    loss, nll = smoothed_cross_entropy(tf.reshape(logits, [-1, tf.shape(logits)[-1]]),
                                       tf.reshape(targets, [-1]), label_smoothing)
    loss, nll = (tf.reshape(x, tf.shape(targets)) for x in (loss, nll))
    return tf.reduce_sum(loss * mask), tf.reduce_sum(nll * mask), tf.reduce_sum(mask)


def smoothed_cross_entropy(logits, targets, label_smoothing: float):
    """Per row of float32 logits [N, V] and int32 targets [N]: (label-smoothed loss, NLL), [N] each.

    From `log_softmax`, with the gradient written out, d loss / d z = p - (1 - e) onehot(y) - e / V:
    TensorFlow's fused cross-entropy kernel takes three times as long as `log_softmax` on CPUs,
    and differentiating the formula through the gather of z_y and the mean of z adds three passes
    over [N, V] (a dense scatter, a broadcast, their sum): together 3-5 % of a training step.
    """
    smoothing = label_smoothing

    @tf.custom_gradient
    def losses(logits):
        log_probs = tf.nn.log_softmax(logits)
        nll = -tf.gather(log_probs, targets, batch_dims=1)
        loss = nll
        if smoothing:  # passes over [N, V] only where smoothing asks for them
            loss = (1.0 - smoothing) * nll - smoothing * tf.reduce_mean(log_probs, axis=-1)

        def gradient(d_loss, d_nll):
            d_all = d_loss + d_nll
            found = tf.exp(log_probs) * d_all[:, None]
            if smoothing:
                width = tf.cast(tf.shape(logits)[-1], tf.float32)
                found -= (smoothing / width * d_loss)[:, None]
            at_target = tf.stack([tf.range(tf.shape(targets)[0]), targets], axis=1)
            return tf.tensor_scatter_nd_sub(found, at_target, d_all - smoothing * d_loss)
        return (loss, nll), gradient

    return losses(logits)


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


def grouped(dataset, accumulate: int, replicas: int = 1):
    """The training batches for `train.accumulate`: K > 1 groups K consecutive batches into one
    element, which `Seq2SeqTrainer.train_step` takes as one update; 1 leaves them as they are.

    Each tensor of a group is [rows, K, length], padded with PAD to the group's largest batch:
    tf.distribute splits the rows among the `replicas`, so the rows of every batch are dealt out
    evenly first (replica r's share at the top of its r-th slice), and the step cuts each batch
    back to its own rows and length.
    """
    if accumulate == 1:
        return dataset
    import tensorflow as tf

    def dealt(tensor):  # [b, L] -> [replicas, ceil(b / replicas), L]
        share = -(-tf.shape(tensor)[0] // replicas)
        tensor = tf.pad(tensor, [[0, share * replicas - tf.shape(tensor)[0]], [0, 0]],
                        constant_values=PAD)
        return tf.reshape(tensor, [replicas, share, -1])

    def stacked(tensor):  # [K, replicas, share, L] -> [replicas * share, K, L]
        shape = tf.shape(tensor)
        return tf.reshape(tf.transpose(tensor, [1, 2, 0, 3]),
                          [shape[1] * shape[2], shape[0], shape[3]])

    dataset = dataset.map(lambda *batch: tf.nest.map_structure(dealt, batch))
    padding = tf.nest.map_structure(lambda spec: tf.constant(PAD, spec.dtype),
                                    dataset.element_spec)
    dataset = dataset.padded_batch(accumulate, padding_values=padding)
    return dataset.map(lambda *group: tf.nest.map_structure(stacked, group),
                       num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _batch_of_group(group, index):
    """The `index`-th batch of a `grouped` element (this replica's rows of it), cut back to its
    rows (those with a target) and each tensor to its length (PAD only ends a sequence)."""
    inputs, targets = group
    rows = tf.reduce_sum(tf.cast(tf.reduce_any(
        tf.not_equal(targets[:, index], PAD), axis=1), tf.int32))

    def cut(tensor):
        tensor = tensor[:rows, index]
        length = tf.reduce_max(tf.reduce_sum(tf.cast(tf.not_equal(tensor, PAD), tf.int32), 1))
        return tensor[:, :tf.maximum(length, 1)]  # 0 rows: the max of nothing is negative
    return tf.nest.map_structure(cut, (inputs, targets))


class Seq2SeqTrainer(keras.Model):
    """Runs a `Seq2Seq` under `fit`/`evaluate`; logs loss, nll (per token) and target_tokens.

    Args:
        seq2seq: the model to train (already built).
        label_smoothing: see `token_losses`.
        token_budget: 0: the loss of an update is its mean over its tokens. Else the batches are
            filled up to this many target tokens, and the loss is their sum divided by it: every
            token weighs the same, also in a batch left partly filled at the end of a bucket.
        accumulate: K > 1: each step takes K batches (`grouped`), one after the other in a
            `tf.while_loop`, and applies the sum of their gradients once: one update of a
            K-times larger batch, with one all-reduce under tf.distribute.
    """

    def __init__(self, seq2seq, label_smoothing: float = 0.0, token_budget: int = 0,
                 accumulate: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.seq2seq = seq2seq
        self.label_smoothing = label_smoothing
        self.token_budget = token_budget
        self.accumulate = accumulate
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
        # The loss is the update's objective over all its batches and replicas (apply_gradients
        # sums the replicas' gradients): a token sum over the tokens, or over the budget.
        if self.token_budget:
            divisor = tf.constant(float(self.token_budget * self.accumulate))
        else:
            divisor = tf.maximum(self._over_replicas(
                tf.reduce_sum(tf.cast(tf.not_equal(targets, PAD), tf.float32))), 1.0)
        if self.accumulate == 1:
            gradients, sums = self._gradients(inputs, targets, divisor)
        else:
            gradients, sums = self._accumulated((inputs, targets), divisor)
        with tf.name_scope("optimizer"):
            self.optimizer.apply_gradients(zip(gradients, self.seq2seq.trainable_variables))
        return self._update_metrics(*sums)

    def _gradients(self, inputs, targets, divisor):
        """The gradients of one batch's share of the loss, and its (loss, nll, token) sums."""
        variables = self.seq2seq.trainable_variables
        with tf.GradientTape() as tape:
            logits = self.seq2seq(inputs, training=True)
            with tf.name_scope("loss"):  # scopes name the parts in `nmt bench profile`
                sums = token_losses(targets, logits, self.label_smoothing)
            scaled = self.optimizer.scale_loss(sums[0] / divisor)
        return tape.gradient(scaled, variables), sums

    def _accumulated(self, group, divisor):
        """The summed gradients and sums of the batches of a `grouped` element."""
        variables = self.seq2seq.trainable_variables

        def add(index, gradients, sums):
            found, batch_sums = self._gradients(*_batch_of_group(group, index), divisor)
            found = [tf.zeros(v.shape, v.dtype) if g is None else tf.convert_to_tensor(g)
                     for g, v in zip(found, variables)]
            return (index + 1, [a + g for a, g in zip(gradients, found)],
                    [a + b for a, b in zip(sums, batch_sums)])

        _, gradients, sums = tf.while_loop(
            lambda index, *_: index < tf.shape(group[1])[1], add,
            (tf.constant(0), [tf.zeros(v.shape, v.dtype) for v in variables],
             [tf.constant(0.0)] * 3))
        return gradients, sums

    def _over_replicas(self, value):
        """The sum of a replica's `value` over all replicas in sync."""
        if self.distribute_strategy.num_replicas_in_sync == 1:
            return value
        return tf.distribute.get_replica_context().all_reduce("sum", value)

    def test_step(self, data):
        inputs, targets, _ = keras.utils.unpack_x_y_sample_weight(data)
        logits = self.seq2seq(inputs, training=False)
        return self._update_metrics(*token_losses(targets, logits, self.label_smoothing))

    def _update_metrics(self, loss_sum, nll_sum, count):
        self.loss_mean.update_state(loss_sum, count)
        self.nll_mean.update_state(nll_sum, count)
        self.tokens.update_state(count)
        if self.distribute_strategy.num_replicas_in_sync == 1:
            results = {metric.name: metric.result() for metric in self.metrics}
        else:
            # Each replica's metric variables hold its own share (tf.distribute sums them where
            # they are read after the step); the step's logs are the sums over all replicas.
            shares = [self.loss_mean.total, self.loss_mean.count, self.nll_mean.total,
                      self.nll_mean.count, self.tokens.total]
            loss, loss_count, nll, nll_count, tokens = tf.unstack(
                self._over_replicas(tf.stack([tf.convert_to_tensor(v) for v in shares])))
            results = {"loss": loss / tf.maximum(loss_count, 1.0),
                       "nll": nll / tf.maximum(nll_count, 1.0), "target_tokens": tokens}
        if isinstance(self.distribute_strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # Keras averages step outputs across workers along axis 0, which scalars lack.
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras 3 `fit` under a tf.distribute strategy first reduces a sample batch across
        # workers to build unbuilt state, which fails for nested batches under
        # MultiWorkerMirroredStrategy (keras-team/keras#20329). Everything here is built at
        # construction, and compile() gets no loss or metric objects. The optimizer's variables
        # are made here, before the train function: made inside it under a MirroredStrategy of
        # several devices (`train.replicas`), their copies would read replica 0's initial value
        # through a cond the function cannot run.
        if not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.seq2seq.trainable_variables)
