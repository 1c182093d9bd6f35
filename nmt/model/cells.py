"""The decoder's recurrent step, one class per cell kind (`CELLS`), with input feeding; and
`lstm_update`, the LSTM's gates, which the encoder's LSTM runs too.

A step computes s_t = RNN([E y_{t-1}; a_{t-1}], s_{t-1}); the input side E y @ W_x + b is
projected for all positions at once (`project_inputs`), outside the step loop.

Steps are not layers: they create their weights on the decoder layer that runs them (`build`), so
the weights keep the names and order of the files written before (decoder/vars/0, 1, ...).
Precision: the part of the state that accumulates over steps (LSTM: c, GRU: h) and the gates are
float32 in any precision; matrix products run in the compute dtype.
"""
from __future__ import annotations

import numpy as np
from keras import ops
from keras.initializers import Orthogonal


def lstm_update(z, c):
    """One LSTM update from the pre-activations z [B, 4U] (Keras's gate order i, f, g, o) and
    the cell state c [B, U]: (h in z's dtype, c float32). The gates and c are float32 in any
    precision (a no-op in float32): c sums over many steps."""
    i, f, g, o = ops.split(ops.cast(z, "float32"), 4, axis=-1)
    c = ops.sigmoid(f) * c + ops.sigmoid(i) * ops.tanh(g)
    h = ops.cast(ops.sigmoid(o) * ops.tanh(c), z.dtype)
    return h, c


class _Step:
    """What the steps share: the input side E y @ W_x + b, whose weights each creates first.

    Args:
        units: state width U.
        input_dim: embedding width E.
    """

    gates: int  # G: the input side is G * U wide
    # The step weight whose gradient training takes after the loop
    # (`nmt.model.gradients.DeferredGradient`), if any.
    deferred_weight: str | None = None

    def __init__(self, units: int, input_dim: int):
        self.units, self.input_dim = units, input_dim

    def _build_input(self, layer, bias_initializer) -> None:
        """The input kernel and bias, on `layer`: the first weights of every step."""
        width = self.gates * self.units
        self.input_kernel = layer.add_weight((self.input_dim, width), name="input_kernel",
                                             initializer="glorot_uniform")
        self.input_bias = layer.add_weight((width,), name="input_bias",
                                           initializer=bias_initializer)

    def project_inputs(self, embedded, cast):
        """[.., E] embedded tokens -> [.., G*U]; `cast` puts a weight in the compute dtype."""
        return ops.matmul(embedded, cast(self.input_kernel)) + cast(self.input_bias)


class LSTMStep(_Step):
    """LSTM with input feeding: [a_{t-1}; h_{t-1}] multiplied by one kernel, one matmul a step.

    Args:
        units: state width U.
        input_dim: embedding width E.

    State parts: (h [B, U] in the compute dtype, c [B, U] float32).

    The pre-activations are z = p + x W_r: the projected input p plus `product_input` x times
    the recurrent kernel, so the training loop can take W_r's gradient after it
    (`nmt.model.gradients.DeferredGradient`).
    """

    state_parts = ("h", "c")
    gates = 4
    deferred_weight = "recurrent_kernel"

    def build(self, layer) -> None:
        """Creates the weights on `layer` (the decoder), in the order the weights files hold."""
        units, gates = self.units, self.gates
        self._build_input(layer, self._forget_bias)
        self.recurrent_kernel = layer.add_weight((2 * units, gates * units),
                                                 name="recurrent_kernel",
                                                 initializer="glorot_uniform")

    def _forget_bias(self, shape, dtype=None):
        # Forget-gate bias 1 (Keras gate order i, f, g, o), as Keras's unit_forget_bias.
        bias = np.zeros(shape, dtype="float32")
        bias[self.units:2 * self.units] = 1.0
        return ops.convert_to_tensor(bias, dtype=dtype)

    def step_weights(self, cast) -> dict:
        return {"recurrent_kernel": cast(self.recurrent_kernel)}

    def product_input(self, feed, state):
        """x_t = [a_{t-1}; h_{t-1}], [B, 2U]: what the recurrent kernel multiplies."""
        return ops.concatenate([feed, state[0]], axis=-1)

    def __call__(self, projected_input, feed, state, weights):
        """(projected input [B, G*U], fed vector [B, U], (h, c), step_weights) -> (h, (h, c))."""
        z = projected_input + ops.matmul(self.product_input(feed, state),
                                         weights["recurrent_kernel"])
        h, c = lstm_update(z, state[1])
        return h, (h, c)


class GRUStep(_Step):
    """GRU with input feeding (Keras's reset_after form). The reset gate scales the recurrent
    part only, so the fed vector gets its own kernel.

    Args:
        units: state width U.
        input_dim: embedding width E.

    State parts: (h [B, U] float32).
    """

    state_parts = ("h",)
    gates = 3
    # No deferred gradient: the reset gate scales the recurrent product (feed_kernel's, x = p +
    # a W_f, could be deferred: not done).

    def build(self, layer) -> None:
        """Creates the weights on `layer` (the decoder), in the order the weights files hold."""
        units, gates = self.units, self.gates
        self._build_input(layer, "zeros")
        self.feed_kernel = layer.add_weight((units, gates * units), name="feed_kernel",
                                            initializer="glorot_uniform")
        self.recurrent_kernel = layer.add_weight((units, gates * units), name="recurrent_kernel",
                                                 initializer=_float32(Orthogonal()))
        self.recurrent_bias = layer.add_weight((gates * units,), name="recurrent_bias",
                                               initializer="zeros")

    def step_weights(self, cast) -> dict:
        return {name: cast(getattr(self, name))
                for name in ("recurrent_kernel", "feed_kernel", "recurrent_bias")}

    def __call__(self, projected_input, feed, state, weights):
        """(projected input [B, G*U], fed vector [B, U], (h,), step_weights) -> (h, (h,)), the
        output h in the compute dtype, the state's h in float32."""
        h = state[0]
        x = projected_input + ops.matmul(feed, weights["feed_kernel"])
        r_part = ops.matmul(ops.cast(h, x.dtype), weights["recurrent_kernel"]) + \
            weights["recurrent_bias"]
        x_z, x_r, x_h = ops.split(ops.cast(x, "float32"), 3, axis=-1)
        h_z, h_r, h_h = ops.split(ops.cast(r_part, "float32"), 3, axis=-1)
        z = ops.sigmoid(x_z + h_z)
        r = ops.sigmoid(x_r + h_r)
        h = z * h + (1.0 - z) * ops.tanh(x_h + r * h_h)
        return ops.cast(h, x.dtype), (h,)


def _float32(initializer):
    """`initializer` drawn in float32, then cast: Orthogonal's QR has no bfloat16 kernel, and a
    model built for bfloat16 translation has bfloat16 variables."""
    return lambda shape, dtype=None: ops.cast(initializer(shape, "float32"), dtype)


CELLS = {"lstm": LSTMStep, "gru": GRUStep}
