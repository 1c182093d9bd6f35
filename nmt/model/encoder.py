"""Source encoder: embeddings and a stack of bidirectional recurrent layers."""
from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from nmt.model.cells import lstm_update


@keras.saving.register_keras_serializable(package="nmt")
class ProjectedLSTM(keras.layers.LSTM):
    """Keras's LSTM with the input side of all time steps multiplied outside the recurrence.

    Keras's CPU loop multiplies each step's input x_t W inside the loop, a product of B rows per
    step; here X W is one product of B*S rows before it, and a step adds h U + b. The weights are
    Keras's (files unchanged) and so are float32's results: a step's sums run in Keras's order,
    (x W + h U) + b. Under bfloat16 the products run in bfloat16, the gates and c in float32
    (`lstm_update`), where Keras's LSTM would keep c in bfloat16. On a GPU, Keras's cuDNN kernel
    (float32, float16).
    """

    def __init__(self, units, **kwargs):
        super().__init__(units, **kwargs)
        cell = self.cell
        if cell.dropout or cell.recurrent_dropout:
            raise ValueError("ProjectedLSTM takes no dropout: drop its inputs outside it")
        if (cell.activation is not keras.activations.tanh
                or cell.recurrent_activation is not keras.activations.sigmoid
                or not cell.use_bias or cell.implementation != 2):
            raise ValueError("ProjectedLSTM runs the default LSTM cell only (tanh, sigmoid, a "
                             "bias, implementation 2)")

    def inner_loop(self, sequences, initial_state, mask, training=False):
        # cuDNN takes float32 and float16, not bfloat16 (GPU figures not measured).
        if self.compute_dtype != "bfloat16" and tf.config.list_logical_devices("GPU"):
            return super().inner_loop(sequences, initial_state, mask, training)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if mask is None:
            mask = ops.ones(ops.shape(sequences)[:2], "bool")
        h, c = initial_state
        outputs, h, c = self._recurrence(ops.matmul(sequences, self.cell.kernel),
                                         ops.cast(mask, "bool"), h, ops.cast(c, "float32"))
        return outputs[:, -1], outputs, [h, c]

    def _recurrence(self, projected, mask, h, c):
        """([B, S, 4H] projected inputs, [B, S] mask, h, c) -> (outputs [B, S, H] in the order
        of the steps, final h, c). A masked step keeps the state; its output is zero when
        `zero_output_for_mask` (Bidirectional sets it), else the last output (zero at first)."""
        inputs, keep = tf.transpose(projected, [1, 0, 2]), tf.transpose(mask)[:, :, None]
        if self.go_backwards:
            inputs, keep = tf.reverse(inputs, [0]), tf.reverse(keep, [0])
        steps = tf.shape(inputs)[0]
        # TensorArrays, not slices: a slice's gradient would be a whole [S, B, 4H] per step.
        inputs = tf.TensorArray(inputs.dtype, size=steps).unstack(inputs)
        keep = tf.TensorArray(tf.bool, size=steps).unstack(keep)
        outputs = tf.TensorArray(h.dtype, size=steps)
        # Cast once, not at each step: under bfloat16 a variable read in the loop is a cast of
        # the whole kernel per step, as long as the step's product itself.
        recurrent_kernel, bias = (ops.cast(w, self.compute_dtype)
                                  for w in (self.cell.recurrent_kernel, self.cell.bias))

        def step(t, outputs, output, h, c):
            new_h, new_c = lstm_update(inputs.read(t) + ops.matmul(h, recurrent_kernel) + bias, c)
            keep_t = keep.read(t)
            h, c = tf.where(keep_t, new_h, h), tf.where(keep_t, new_c, c)
            output = tf.where(keep_t, new_h,
                              tf.zeros_like(new_h) if self.zero_output_for_mask else output)
            return t + 1, outputs.write(t, output), output, h, c

        _, outputs, _, h, c = tf.while_loop(lambda t, *_: t < steps, step,
                                            (0, outputs, tf.zeros_like(h), h, c),
                                            maximum_iterations=steps, swap_memory=True)
        return tf.transpose(outputs.stack(), [1, 0, 2]), h, c


@keras.saving.register_keras_serializable(package="nmt")
class Encoder(keras.layers.Layer):
    """Embeds source ids and runs stacked bidirectional LSTM (or GRU) layers over them.

    From the second layer on, each layer's output is added to its input (a residual connection).
    Padding (id 0) is masked, so padding a sentence does not change its encoding.

    Args:
        vocab_size: source vocabulary size.
        embedding_dim: embedding width E.
        units: hidden size H of each direction; the memory is 2H wide.
        num_layers: number of bidirectional layers.
        cell: "lstm" or "gru".
        dropout: dropout on the embeddings and between layers.
        embedding: an Embedding layer to use (shared with the decoder), or None for our own.
        embeddings_initializer: of our own embeddings (Keras's default: uniform).

    Call arguments:
        source: int tensor [B, S], 0 = padding.
        training: whether dropout is active.

    Returns:
        memory: [B, S, 2H] outputs of the last layer (zero at padding).
        final: the last layer's final states, concatenated over the two directions:
            a list [h [B, 2H], c [B, 2H]] for LSTM, [h [B, 2H]] for GRU.
        mask: bool [B, S], True at real tokens.
    """

    def __init__(self, vocab_size, embedding_dim, units, num_layers=1, cell="lstm", dropout=0.0,
                 embedding=None, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_dim, self.units = vocab_size, embedding_dim, units
        self.num_layers, self.cell, self.dropout = num_layers, cell, dropout
        self.embedding = embedding or keras.layers.Embedding(
            vocab_size, embedding_dim, embeddings_initializer=embeddings_initializer,
            name="embedding")
        rnn = {"lstm": ProjectedLSTM, "gru": keras.layers.GRU}[cell]
        rnn_policy = self.dtype_policy
        if self.compute_dtype == "bfloat16":
            # Float32 weights in any bfloat16 precision (the orthogonal initializer's QR has no
            # bfloat16 kernel); Keras's CPU GRU keeps its state in the compute dtype, which
            # bfloat16 is too coarse for: it runs in float32. (float16 is left to cuDNN.)
            rnn_policy = "mixed_bfloat16" if cell == "lstm" else "float32"
        # Default activations and no recurrent dropout keep Keras's cuDNN path open on GPUs.
        self.rnns = [keras.layers.Bidirectional(rnn(units, return_sequences=True, return_state=True,
                                                    dtype=rnn_policy),
                                                name=f"birnn_{i}", dtype=rnn_policy)
                     for i in range(num_layers)]
        self.drop = keras.layers.Dropout(dropout)

    def build(self, source_shape):
        if not self.embedding.built:  # a shared embedding is built once
            self.embedding.build(source_shape)
        width = self.embedding_dim
        for rnn in self.rnns:
            rnn.build((None, None, width))
            width = 2 * self.units

    def call(self, source, training=False):
        mask = ops.not_equal(source, 0)
        x = self.drop(self.embedding(source), training=training)
        for index, rnn in enumerate(self.rnns):
            if index > 0:
                x = self.drop(x, training=training)
            outputs = rnn(x, mask=mask, training=training)
            # Bidirectional returns [out, fw states..., bw states...]
            y, states = ops.cast(outputs[0], x.dtype), outputs[1:]
            x = y + x if index > 0 else y
        half = len(states) // 2
        final = [ops.cast(ops.concatenate([fw, bw], axis=-1), self.compute_dtype)
                 for fw, bw in zip(states[:half], states[half:])]
        memory = x * ops.cast(mask[:, :, None], x.dtype)
        return memory, final, mask

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "units": self.units,
                "num_layers": self.num_layers, "cell": self.cell, "dropout": self.dropout,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embedding.embeddings_initializer)}
