"""The training optimizer: Adam with its update fused into one kernel per variable, and
decoupled weight decay (AdamW).

Keras 3's Adam writes its update as about ten separate tensor ops per variable; on a CPU that
costs about 100 ms per step for this model's 12 M parameters, some 20 % of a training step
(measured: ../shared/notes/tf-keras-cpu-probe.md). TensorFlow's fused `ResourceApplyAdam` kernel
does the same arithmetic in one pass over memory (47 ms). Same formula, same weights (2e-8).
"""
from __future__ import annotations

import keras
import tensorflow as tf

from nmt.config.options import TrainConfig


def adam(settings: TrainConfig, variables) -> "FusedAdam":
    """The recipe's optimizer for the trainable `variables` of a model.

    With `weight_decay` > 0 each step first multiplies the weights by 1 - lr * weight_decay,
    apart from the gradient (Loshchilov & Hutter's AdamW; Keras's own decay). Biases and scales
    (the 1-D weights) are left out: decaying them pulls outputs, not weights, towards zero.
    Gradient accumulation (`accumulate`) is the training step's (`Seq2SeqTrainer`): one update
    per step either way, and `iterations` counts updates.
    """
    optimizer = FusedAdam(settings.learning_rate, epsilon=settings.adam_epsilon,
                          global_clipnorm=settings.clip_norm or None,
                          weight_decay=settings.weight_decay or None,
                          warmup_steps=settings.warmup_steps)
    optimizer.exclude_from_weight_decay(var_list=[v for v in variables if len(v.shape) < 2])
    return optimizer


@keras.saving.register_keras_serializable(package="nmt")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` (without amsgrad) whose per-variable update is one fused kernel.

    `warmup_steps` > 0 scales the learning rate by min(1, update / warmup_steps) (the update
    counted from 1), in Adam's step and the weight decay alike; `learning_rate` reads the scaled
    rate and setting it (the plateau decay) sets the rate the ramp leads to.
    """

    def __init__(self, *args, warmup_steps: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.warmup_steps = warmup_steps

    def _get_current_learning_rate(self):
        rate = super()._get_current_learning_rate()
        if not self.warmup_steps:
            return rate
        update = keras.ops.cast(self.iterations + 1, "float32")
        return rate * keras.ops.minimum(1.0, update / self.warmup_steps)

    def get_config(self):
        return {**super().get_config(), "warmup_steps": self.warmup_steps}

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        # Under tf.distribute this runs once per device (an update context), on that device's
        # copies: `_handle` then gives their handles.
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable), m=_handle(m), v=_handle(v),
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), step),
            lr=tf.cast(learning_rate, dtype), beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype), epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.convert_to_tensor(tf.cast(gradient, dtype)), use_locking=False)


def _handle(variable):
    """The tf resource handle behind a Keras variable (or a tf.Variable)."""
    return variable.handle if hasattr(variable, "handle") else variable.value.handle
