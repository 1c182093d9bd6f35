"""The bridge: the decoder's first recurrent state from the encoder's final one (`BRIDGES`).

Bridges are not layers: the decoder tracks their `layers` as its attribute `bridges`, the name
the weights files were written with (decoder/bridges/dense, dense_1).
"""
from __future__ import annotations

import keras
from keras import ops


def _tanh_layer(units: int, part: str):
    return keras.layers.Dense(units, activation="tanh", name=f"bridge_{part}")


class PerStateBridge:
    """A tanh layer per state part: h_0 from the encoder's final h, c_0 from its c.

    Args:
        units: decoder state width U.
        state_parts: the cell's state parts, e.g. ("h", "c").
    """

    def __init__(self, units: int, state_parts: tuple):
        self.layers = [_tanh_layer(units, part) for part in state_parts]

    def __call__(self, encoder_final, dtype):
        """encoder_final: one [B, M] tensor per state part -> one [B, U] tensor per part (dtype:
        the compute dtype, for the bridges without a layer)."""
        return [layer(state) for layer, state in zip(self.layers, encoder_final)]


class HiddenBridge:
    """One tanh layer, fed the encoder's final h, starts every part (JoeyNMT's
    `init_hidden: bridge`)."""

    def __init__(self, units: int, state_parts: tuple):
        self.layers = [_tanh_layer(units, "h")]
        self.state_parts = state_parts

    def __call__(self, encoder_final, dtype):
        return [self.layers[0](encoder_final[0])] * len(self.state_parts)


class ZeroBridge:
    """Every part starts at zero; the decoder learns from the attention alone."""

    def __init__(self, units: int, state_parts: tuple):
        self.layers = []
        self.units, self.state_parts = units, state_parts

    def __call__(self, encoder_final, dtype):
        batch = ops.shape(encoder_final[0])[0]
        return [ops.zeros((batch, self.units), dtype) for _ in self.state_parts]


BRIDGES = {"per_state": PerStateBridge, "hidden": HiddenBridge, "zero": ZeroBridge}
