"""Gradients taken after a loop rather than inside it: `DeferredGradient`.

TensorFlow differentiates a while loop step by step. A tensor W that every step multiplies gets
its share of the gradient at each step, a small product, and the shares are summed inside the
backward loop: one addition of W's size per step. When a step computes z_t = p_t + x_t W with p_t
a loop input, z_t's gradient is p_t's, so the whole sum is one product of the recorded x_t and
P's gradient, taken after the loop.
"""
from __future__ import annotations

import tensorflow as tf


class DeferredGradient:
    """The gradient of a weight W that each step of a loop multiplies as z_t = p_t + x_t W: one
    product after the loop instead of one per step.

    Args:
        weight: W, in the dtype the loop multiplies in.
        equation: the gradient as an einsum of the recorded x [T, ...] and P's gradient
            [T, ...]. The default is a weight matrix [I, O] that B rows multiply at each step,
            "tbi,tbo->io"; the attention context, a batch of [S, M] memories that [B, S] weights
            multiply, is "tbs,tbm->bsm".

    Usage: the loop multiplies by `stopped`, its inputs P pass through `attach` before it, and
    each step records x_t; `product_inputs` is set to the recorded [T, ...] after the loop, before
    the gradient is taken. Where a step has no p_t, a loop input of zeros added to z_t makes one.
    First-order only: a gradient of the gradient would miss W's part inside the loop.
    """

    def __init__(self, weight, equation: str = "tbi,tbo->io"):
        self.weight, self.equation = weight, equation
        self.stopped = tf.stop_gradient(weight)
        self.product_inputs = None

    def attach(self, loop_inputs):
        """The loop inputs P [T, ...], unchanged, their gradient passed on to W."""
        @tf.custom_gradient
        def hooked(loop_inputs, weight):
            def gradient(d_loop_inputs):
                recorded = self.product_inputs
                d_weight = tf.einsum(self.equation, recorded,
                                     tf.cast(d_loop_inputs, recorded.dtype))
                return d_loop_inputs, tf.cast(d_weight, weight.dtype)
            return tf.identity(loop_inputs), gradient
        return hooked(loop_inputs, self.weight)
