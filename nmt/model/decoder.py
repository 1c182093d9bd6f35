"""Attentional decoder: a recurrent step with input feeding, an attention, a bridge and an output.

One step, as in Luong et al. (2015) input feeding (JoeyNMT's recurrent decoder):

    s_t = RNN([E y_{t-1}; a_{t-1}], s_{t-1})     input feeding: a_{t-1} is the last step's output
    c_t, w_t = attention(query=s_t, memory)            padding masked
    a_t = tanh(W_c [s_t; c_t] + b_c)                   the attentional vector
    p(y_t | y_<t, x) = softmax(output(a_t))

Its parts, each chosen by an option of `ModelConfig` through a registry: the recurrent step
(`cells.CELLS`, `cell`), the attention (`attention.ATTENTIONS`, `attention`), the first state
(`bridges.BRIDGES`, `bridge`) and the output layer (`output.OUTPUTS`, `tie`). `step` is the one
function that both the teacher-forced `call` (a while loop over target positions) and the model's
`decode_step` use, so training and search compute the same thing.

Weights file layout: the decoder owns the weights of its step, its attentional vector and a tied
output's bias (decoder/vars/0, 1, ... in that order); the attention, embeddings, bridges and output
projection are sub-layers under the attribute names they had before the parts were split out.
"""
from __future__ import annotations

from typing import NamedTuple

import keras
import tensorflow as tf
from keras import ops

from nmt.config.options import ModelConfig, architecture
from nmt.model.attention import ATTENTIONS
from nmt.model.bridges import BRIDGES
from nmt.model.cells import CELLS
from nmt.model.gradients import DeferredGradient
from nmt.model.output import OUTPUTS


class Memory(NamedTuple):
    """What the decoder attends to, computed once per sentence by `Seq2Seq.encode`."""
    values: object  # [B, S, M] encoder outputs
    keys: object  # [B, S, K] attention keys, projected once
    mask: object  # bool [B, S], True at real tokens


@keras.saving.register_keras_serializable(package="nmt")
class AttentionDecoder(keras.layers.Layer):
    """Target embeddings, recurrent step with input feeding, attention and output layer.

    Args:
        config: the model's options (cell, widths, dropout, tie, bridge, attention); the encoder
            memory is M = 2 * encoder_units wide.
        vocab_size: target vocabulary size V.
        embeddings_initializer: of the target embeddings (Seq2Seq's, shared with the encoder's).

    Dropout (config.dropout) is on the recurrent input [E y; a] and on [s; c] before the
    attentional vector.

    State: a tuple (h, c, a) for LSTM and (h, a) for GRU, each [B, U]; `a` is the fed input.
    """

    def __init__(self, config: ModelConfig, vocab_size: int, embeddings_initializer="uniform",
                 **kwargs):
        super().__init__(**kwargs)
        self.model_config, self.vocab_size = config, vocab_size
        self.units, self.dropout = config.decoder_units, config.dropout
        self.memory_dim = 2 * config.encoder_units
        # Constructed in the order the layers draw their initializers' seeds in, since the first
        # version: the same seed gives the same initial weights.
        self.cell = CELLS[config.cell](self.units, config.embedding_dim)
        self.embedding = keras.layers.Embedding(vocab_size, config.embedding_dim,
                                                name="embedding",
                                                embeddings_initializer=embeddings_initializer)
        self.attention = ATTENTIONS[config.attention].for_model(config)
        self.bridge = BRIDGES[config.bridge](self.units, self.cell.state_parts)
        self.output_head = OUTPUTS[config.tie](vocab_size, self.units, self.embedding)
        # The parts' layers, tracked under the attribute names of the weights files.
        self.bridges = self.bridge.layers
        if self.output_head.layer is not None:
            setattr(self, self.output_head.attribute, self.output_head.layer)
        self.seed_generator = keras.random.SeedGenerator(1337)
        # Training takes the gradients of the recurrent kernel and the memory after the step loop
        # (`_defer_kernel`, `_defer_memory`); off, TensorFlow's own step-by-step loop gradient
        # (tests compare the two).
        self.deferred_gradients = True
        # State and memory come from the model in their own dtypes (some parts float32 in any
        # precision): Keras must not cast them to the compute dtype.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True

    def build(self, input_shape=None):
        units = self.units
        if not self.embedding.built:  # a shared embedding is built once
            self.embedding.build((None, None))
        self.cell.build(self)
        self.combine_kernel = self.add_weight((units + self.memory_dim, units),
                                              name="combine_kernel", initializer="glorot_uniform")
        self.combine_bias = self.add_weight((units,), name="combine_bias", initializer="zeros")
        self.attention.build((None, units), values_shape=(None, None, self.memory_dim))
        for bridge in self.bridges:
            bridge.build((None, self.memory_dim))
        self.output_head.build(self)
        self.built = True

    def initial_state(self, encoder_final):
        """Decoder state from the encoder's final states (through the bridge), zero feed."""
        parts = self.bridge(encoder_final, self.compute_dtype)
        feed = ops.zeros_like(parts[0])
        # The part that accumulates over steps (LSTM: c, GRU: h) is float32 in any precision.
        parts[-1] = ops.cast(parts[-1], "float32")
        return (*parts, feed)

    def project_inputs(self, tokens, training=False):
        """E y @ W_x + b for all positions at once: [..] ids -> [.., G*U], outside the step loop."""
        embedded = self.embedding(tokens)
        if training and self.dropout > 0:
            embedded = keras.random.dropout(embedded, self.dropout, seed=self.seed_generator)
        return self.cell.project_inputs(embedded, self._cast)

    def step_weights(self) -> dict:
        """The kernels and biases a step multiplies by, in the compute dtype (the attention's
        float32 parts in float32).

        Under mixed precision the caller casts them once per sequence, not at every step: a
        cast of the 2 M-weight recurrent kernel takes about as long as the bfloat16 product that
        uses it (ja-en training step, bfloat16, one thread: 515 -> 481 ms of CPU).
        """
        return {"cell": self.cell.step_weights(self._cast),
                "combine_kernel": self._cast(self.combine_kernel),
                "combine_bias": self._cast(self.combine_bias),
                "attention": self.attention.step_weights()}

    def step(self, projected_input, state, memory: Memory, feed_mask=None, hidden_mask=None,
             weights: dict | None = None, context_input=None, rows_per_memory: int = 1):
        """One decoder step.

        Args:
            projected_input: [B, G*U] from `project_inputs` of the previous target token (B rows
                here and below: B * R when `rows_per_memory` is R).
            state: the decoder state tuple.
            memory: the encoder `Memory`, one row per R rows of the input and state.
            feed_mask, hidden_mask: scaled dropout masks [B, U] and [B, U+M], or None.
            weights: `step_weights()`, when the caller runs many steps (default: cast here).
            context_input: zeros [B, M] added to the context, or None: in training, a loop input
                whose gradient is the context's (`DeferredGradient`).
            rows_per_memory: R consecutive rows of the input and state per memory row (beam
                search: the hypotheses of a sentence, which share one copy of its memory).

        Returns:
            (attentional vector a_t [B, U], new state, attention weights [B, S]).
        """
        w = weights or self.step_weights()
        # 1. input feeding: the last attentional vector joins the input
        feed = self._fed(state, feed_mask)
        # 2. the recurrent step: s_t
        h, recurrent = self.cell(projected_input, feed, state[:-1], w["cell"])
        # 3. attention: the context c_t of s_t
        context, attention = self.attention(h, memory.keys, memory.values, memory.mask,
                                            w["attention"], rows_per_memory=rows_per_memory)
        if context_input is not None:
            context = context + context_input
        # 4. the attentional vector a_t = tanh(W_c [s_t; c_t] + b_c)
        hidden = ops.concatenate([h, context], axis=-1)
        if hidden_mask is not None:
            hidden = hidden * hidden_mask
        attentional = ops.tanh(ops.matmul(hidden, w["combine_kernel"]) + w["combine_bias"])
        return attentional, (*recurrent, attentional), attention

    @staticmethod
    def _fed(state, feed_mask):
        """The last attentional vector a_{t-1}, the step's fed input, dropped out in training."""
        return state[-1] if feed_mask is None else state[-1] * feed_mask

    def _cast(self, weight):
        # `step` also runs outside this layer's __call__ (search), where Keras does not autocast
        # variables to the compute dtype under mixed precision.
        return ops.cast(weight, self.compute_dtype)

    def logits(self, attentional):
        """[.., U] attentional vectors -> [.., V] float32 logits (softmax and loss need them)."""
        with tf.name_scope("output"):  # the scope `nmt bench profile` groups by
            return self.output_head(attentional)

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
        # 1. the input side of every step at once, time-major: [T, B, G*U]
        inputs = tf.transpose(self.project_inputs(target_in, training), [1, 0, 2])
        steps, batch = tf.shape(inputs)[0], tf.shape(inputs)[1]
        # 2. the step's weights, cast once for the whole sequence; in training, the recurrent
        # kernel's and the attended memory's gradients taken after the loop (`DeferredGradient`)
        step_weights = self.step_weights()
        defer = training and self.deferred_gradients
        kernel_gradient = memory_gradient = context_inputs = None
        if defer and self.cell.deferred_weight:
            inputs, step_weights, kernel_gradient = self._defer_kernel(inputs, step_weights)
        if defer:
            memory, memory_gradient, context_inputs = self._defer_memory(memory, steps, batch)
        inputs = tf.TensorArray(inputs.dtype, size=steps).unstack(inputs)
        # 3. one dropout mask per step, drawn before the loop
        masks = self._dropout_masks(steps, batch, inputs.dtype) if training else None
        outputs = tf.TensorArray(self.compute_dtype, size=steps)
        keep_weights = return_attention or memory_gradient is not None
        weights = tf.TensorArray("float32", size=steps if keep_weights else 0)
        product_inputs = tf.TensorArray(self.compute_dtype,
                                        size=steps if kernel_gradient is not None else 0)

        def body(t, state, outputs, weights, product_inputs):
            feed_mask, hidden_mask = (masks[0].read(t), masks[1].read(t)) if masks else (None, None)
            if kernel_gradient is not None:  # x_t (the cell concatenates it again: [B, 2U])
                product_inputs = product_inputs.write(
                    t, self.cell.product_input(self._fed(state, feed_mask), state[:-1]))
            out, state, attention = self.step(
                inputs.read(t), state, memory, feed_mask, hidden_mask, step_weights,
                context_inputs.read(t) if memory_gradient is not None else None)
            outputs = outputs.write(t, out)
            if keep_weights:
                weights = weights.write(t, attention)
            return t + 1, state, outputs, weights, product_inputs

        # 4. the steps, in a while loop over target positions
        _, _, outputs, weights, product_inputs = tf.while_loop(
            lambda t, *_: t < steps, body,
            (tf.constant(0), tuple(state), outputs, weights, product_inputs))
        weights = weights.stack() if keep_weights else None
        if kernel_gradient is not None:
            kernel_gradient.product_inputs = product_inputs.stack()
        if memory_gradient is not None:  # in the dtype `_attend` multiplied the values in
            memory_gradient.product_inputs = ops.cast(weights, memory.values.dtype)
        # 5. the logits of all positions at once, batch-major again
        logits = self.logits(tf.transpose(outputs.stack(), [1, 0, 2]))
        if return_attention:
            return logits, tf.transpose(weights, [1, 0, 2])
        return logits

    def _defer_kernel(self, inputs, step_weights):
        """The cell's deferred weight (LSTM: z_t = p_t + x_t W_r) stopped in the step's weights, its
        gradient X^T dP hooked onto the projected inputs P [T, B, G*U].

        Returns (inputs, step_weights, its `DeferredGradient`); the loop records x_t.
        """
        name = self.cell.deferred_weight
        gradient = DeferredGradient(step_weights["cell"][name])
        cell = {**step_weights["cell"], name: gradient.stopped}
        return gradient.attach(inputs), {**step_weights, "cell": cell}, gradient

    def _defer_memory(self, memory: Memory, steps, batch):
        """The memory's values V stopped, their gradient taken from a loop input of zeros added to
        each context: c_t = w_t V + 0, so its gradient is dc_t, and V's is sum_t w_t^T dc_t.

        Returns (memory, its `DeferredGradient`, zeros [T, B, M] in a TensorArray: `step`'s
        context_input); the loop records w_t.
        """
        values = memory.values
        gradient = DeferredGradient(values, "tbs,tbm->bsm")
        zeros = gradient.attach(tf.zeros([steps, batch, tf.shape(values)[-1]], values.dtype))
        context_inputs = tf.TensorArray(values.dtype, size=steps).unstack(zeros)
        return memory._replace(values=gradient.stopped), gradient, context_inputs

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
        return {**super().get_config(), "config": architecture(self.model_config),
                "vocab_size": self.vocab_size,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embedding.embeddings_initializer)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        return cls(ModelConfig(**config.pop("config")), **config)
