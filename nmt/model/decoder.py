"""Attentional decoder: an LSTM (or GRU) with Bahdanau attention and input feeding.

One step, as in Luong et al. (2015) input feeding with Bahdanau's additive score (JoeyNMT's
recurrent decoder):

    s_t = RNN([E y_{t-1}; a_{t-1}], s_{t-1})     input feeding: a_{t-1} is the last step's output
    c_t, w_t = attention(query=s_t, memory)            additive score, padding masked
    a_t = tanh(W_c [s_t; c_t] + b_c)                   the attentional vector
    p(y_t | y_<t, x) = softmax(W_o a_t + b_o)

Written as one `step` function that both the teacher-forced `call` (a while loop over target
positions) and the model's `decode_step` use, so training and search compute the same thing.
"""
from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from nmt.model.attention import AdditiveAttention


class Memory(NamedTuple):
    """What the decoder attends to, computed once per sentence by `Seq2Seq.encode`."""
    values: object  # [B, S, M] encoder outputs
    keys: object  # [B, S, A] attention keys, projected once
    mask: object  # bool [B, S], True at real tokens


@keras.saving.register_keras_serializable(package="nmt")
class AttentionDecoder(keras.layers.Layer):
    """Target embeddings, recurrent cell with input feeding, attention and output projection.

    Args:
        vocab_size: target vocabulary size V.
        embedding_dim: embedding width E.
        units: recurrent state and attentional vector width U.
        attention_units: attention width A.
        memory_dim: encoder memory width M.
        cell: "lstm" or "gru".
        dropout: on the recurrent input [E y; a] and on [s; c] before the attentional vector.
        tie_output: the output layer's weights are the target embeddings (transposed): logits =
            E (P a) + b, with P a projection from U to E when the widths differ (Press & Wolf).
        bridge: the first state from the encoder's final states [B, M]: "per_state" = a tanh
            layer per state part (h from h, c from c); "hidden" = one tanh layer from h gives h and
            c alike (JoeyNMT's `init_hidden: bridge`); "zero" = zeros.

    State: a tuple (h, c, a) for LSTM and (h, a) for GRU, each [B, U]; `a` is the fed input.
    """

    def __init__(self, vocab_size, embedding_dim, units, attention_units, memory_dim, cell="lstm",
                 dropout=0.0, tie_output=False, embeddings_initializer="uniform",
                 bridge="per_state", **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.embedding_dim, self.units = vocab_size, embedding_dim, units
        self.attention_units, self.memory_dim = attention_units, memory_dim
        self.cell, self.dropout, self.tie_output, self.bridge = cell, dropout, tie_output, bridge
        self.gates = {"lstm": 4, "gru": 3}[cell]
        self.state_parts = ("h", "c")[:2 if cell == "lstm" else 1]
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding",
                                                embeddings_initializer=embeddings_initializer)
        self.attention = AdditiveAttention(attention_units, name="attention")
        bridged = {"per_state": self.state_parts, "hidden": ("h",), "zero": ()}[bridge]
        self.bridges = [keras.layers.Dense(units, activation="tanh", name=f"bridge_{part}")
                        for part in bridged]
        # The largest matrix product: in the compute dtype; its logits are cast to float32.
        if not tie_output:
            self.output_layer = keras.layers.Dense(vocab_size, name="output")
        elif embedding_dim != units:
            self.output_projection = keras.layers.Dense(embedding_dim, use_bias=False,
                                                        name="output_projection")
        self.seed_generator = keras.random.SeedGenerator(1337)
        # State and memory come from the model in their own dtypes (some parts float32 in any
        # precision): Keras must not cast them to the compute dtype.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

    def build(self, input_shape=None):
        units, gates = self.units, self.gates
        if not self.embedding.built:  # a shared embedding is built once
            self.embedding.build((None, None))
        self.input_kernel = self.add_weight((self.embedding_dim, gates * units),
                                            name="input_kernel", initializer="glorot_uniform")
        self.input_bias = self.add_weight((gates * units,), name="input_bias",
                                          initializer=self._gate_bias_initializer)
        if self.cell == "lstm":
            # [a_{t-1}; h_{t-1}] multiplied by one kernel: one matmul per step.
            self.recurrent_kernel = self.add_weight((2 * units, gates * units),
                                                    name="recurrent_kernel",
                                                    initializer="glorot_uniform")
        else:
            # GRU's reset gate scales the recurrent part only, so the fed input gets its own kernel.
            self.feed_kernel = self.add_weight((units, gates * units), name="feed_kernel",
                                               initializer="glorot_uniform")
            self.recurrent_kernel = self.add_weight((units, gates * units), name="recurrent_kernel",
                                                    initializer="orthogonal")
            self.recurrent_bias = self.add_weight((gates * units,), name="recurrent_bias",
                                                  initializer="zeros")
        self.combine_kernel = self.add_weight((units + self.memory_dim, units),
                                              name="combine_kernel", initializer="glorot_uniform")
        self.combine_bias = self.add_weight((units,), name="combine_bias", initializer="zeros")
        self.attention.build((None, units), values_shape=(None, None, self.memory_dim))
        for bridge in self.bridges:
            bridge.build((None, self.memory_dim))
        if not self.tie_output:
            self.output_layer.build((None, units))
        else:
            self.output_bias = self.add_weight((self.vocab_size,), name="output_bias",
                                               initializer="zeros", dtype="float32")
            if self.embedding_dim != units:
                self.output_projection.build((None, units))
        self.built = True

    def _gate_bias_initializer(self, shape, dtype=None):
        # LSTM forget-gate bias 1 (Keras gate order i, f, g, o), as Keras's unit_forget_bias.
        bias = np.zeros(shape, dtype="float32")
        if self.cell == "lstm":
            bias[self.units:2 * self.units] = 1.0
        return ops.convert_to_tensor(bias, dtype=dtype)

    def initial_state(self, encoder_final):
        """Decoder state from the encoder's final states (through `bridge`), zero feed."""
        if self.bridge == "per_state":
            parts = [bridge(state) for bridge, state in zip(self.bridges, encoder_final)]
        elif self.bridge == "hidden":  # one layer, fed the final h, starts every part
            parts = [self.bridges[0](encoder_final[0])] * len(self.state_parts)
        else:
            batch = ops.shape(encoder_final[0])[0]
            parts = [ops.zeros((batch, self.units), self.compute_dtype) for _ in self.state_parts]
        feed = ops.zeros_like(parts[0])
        # The part that accumulates over steps (LSTM: c, GRU: h) is float32 in any precision.
        parts[-1] = ops.cast(parts[-1], "float32")
        return (*parts, feed)

    def project_inputs(self, tokens, training=False):
        """E y @ W_x + b for all positions at once: [..] ids -> [.., G*U], outside the step loop."""
        embedded = self.embedding(tokens)
        if training and self.dropout > 0:
            embedded = keras.random.dropout(embedded, self.dropout, seed=self.seed_generator)
        return ops.matmul(embedded, self._cast(self.input_kernel)) + self._cast(self.input_bias)

    def step_weights(self) -> dict:
        """The kernels and biases a step multiplies by, in the compute dtype.

        Under mixed precision the caller casts them once per sequence, not at every step: a
        cast of the 2 M-weight recurrent kernel takes about as long as the bfloat16 product that
        uses it (ja-en training step, bfloat16, one thread: 515 -> 481 ms of CPU).
        """
        names = ["recurrent_kernel", "combine_kernel", "combine_bias"]
        if self.cell == "gru":
            names += ["feed_kernel", "recurrent_bias"]
        weights = {name: self._cast(getattr(self, name)) for name in names}
        weights["query_kernel"] = self._cast(self.attention.query_kernel)
        return weights

    def step(self, projected_input, state, memory: Memory, feed_mask=None, hidden_mask=None,
             weights: dict | None = None):
        """One decoder step.

        Args:
            projected_input: [B, G*U] from `project_inputs` of the previous target token.
            state: the decoder state tuple.
            memory: the encoder `Memory`.
            feed_mask, hidden_mask: scaled dropout masks [B, U] and [B, U+M], or None.
            weights: `step_weights()`, when the caller runs many steps (default: cast here).

        Returns:
            (attentional vector a_t [B, U], new state, attention weights [B, S]).
        """
        w = weights or self.step_weights()
        feed = state[-1]
        if feed_mask is not None:
            feed = feed * feed_mask
        if self.cell == "lstm":
            h, c = state[0], state[1]
            z = projected_input + ops.matmul(ops.concatenate([feed, h], axis=-1),
                                             w["recurrent_kernel"])
            # Gates and cell state in float32 (a no-op in float32): c sums over many steps.
            i, f, g, o = ops.split(ops.cast(z, "float32"), 4, axis=-1)
            c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
            h = ops.cast(ops.sigmoid(o) * ops.tanh(c), z.dtype)
            recurrent = (h, c)
        else:
            h = state[0]  # float32, as LSTM's c
            x = projected_input + ops.matmul(feed, w["feed_kernel"])
            r_part = ops.matmul(ops.cast(h, x.dtype), w["recurrent_kernel"]) + w["recurrent_bias"]
            x_z, x_r, x_h = ops.split(ops.cast(x, "float32"), 3, axis=-1)
            h_z, h_r, h_h = ops.split(ops.cast(r_part, "float32"), 3, axis=-1)
            z = ops.sigmoid(x_z + h_z)
            r = ops.sigmoid(x_r + h_r)
            h = z * h + (1.0 - z) * ops.tanh(x_h + r * h_h)
            recurrent = (h,)
            h = ops.cast(h, x.dtype)
        context, attention = self.attention(h, memory.keys, memory.values, memory.mask,
                                            query_kernel=w["query_kernel"])
        hidden = ops.concatenate([h, context], axis=-1)
        if hidden_mask is not None:
            hidden = hidden * hidden_mask
        attentional = ops.tanh(ops.matmul(hidden, w["combine_kernel"]) + w["combine_bias"])
        return attentional, (*recurrent, attentional), attention

    def _cast(self, weight):
        # `step` also runs outside this layer's __call__ (search), where Keras does not autocast
        # variables to the compute dtype under mixed precision.
        return ops.cast(weight, self.compute_dtype)

    def logits(self, attentional):
        """[.., U] attentional vectors -> [.., V] float32 logits (softmax and loss need them)."""
        if not self.tie_output:
            return ops.cast(self.output_layer(attentional), "float32")
        if self.embedding_dim != self.units:
            attentional = self.output_projection(attentional)
        return ops.matmul(ops.cast(attentional, "float32"),
                          ops.transpose(ops.cast(self.embedding.embeddings, "float32"))) + \
            self.output_bias

    def call(self, target_in, state, memory: Memory, training=False, return_attention=False):
        """Teacher-forced decoding of a whole target prefix.

        Args:
            target_in: int [B, T], BOS followed by the target (padding after its end is harmless:
                later positions never influence earlier ones).
            state: initial state from `initial_state`.
            memory: the encoder `Memory`.

        Returns:
            logits [B, T, V]; with `return_attention`, also the weights [B, T, S].
        """
        inputs = tf.transpose(self.project_inputs(target_in, training), [1, 0, 2])
        steps, batch = tf.shape(inputs)[0], tf.shape(inputs)[1]
        inputs = tf.TensorArray(inputs.dtype, size=steps).unstack(inputs)
        masks = self._dropout_masks(steps, batch, inputs.dtype) if training else None
        outputs = tf.TensorArray(self.compute_dtype, size=steps)
        weights = tf.TensorArray("float32", size=steps if return_attention else 0,
                                 dynamic_size=False)

        step_weights = self.step_weights()

        def body(t, state, outputs, weights):
            feed_mask, hidden_mask = (masks[0].read(t), masks[1].read(t)) if masks else (None, None)
            out, state, attention = self.step(inputs.read(t), state, memory, feed_mask, hidden_mask,
                                              step_weights)
            outputs = outputs.write(t, out)
            if return_attention:
                weights = weights.write(t, attention)
            return t + 1, state, outputs, weights

        _, _, outputs, weights = tf.while_loop(lambda t, *_: t < steps, body,
                                               (tf.constant(0), tuple(state), outputs, weights))
        logits = self.logits(tf.transpose(outputs.stack(), [1, 0, 2]))
        if return_attention:
            return logits, tf.transpose(weights.stack(), [1, 0, 2])
        return logits

    def _dropout_masks(self, steps, batch, dtype):
        """Per-step dropout masks for the fed input and the [s; c] vector, drawn before the loop."""
        if self.dropout <= 0:
            return None
        masks = []
        for width in (self.units, self.units + self.memory_dim):
            ones = ops.ones((steps, batch, width), dtype=dtype)
            mask = keras.random.dropout(ones, self.dropout, seed=self.seed_generator)
            masks.append(tf.TensorArray(dtype, size=steps).unstack(mask))
        return masks

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "embedding_dim": self.embedding_dim, "units": self.units,
                "attention_units": self.attention_units, "memory_dim": self.memory_dim,
                "cell": self.cell, "dropout": self.dropout, "tie_output": self.tie_output,
                "bridge": self.bridge}
