"""The output layer: attentional vectors -> float32 logits, tied to the target embeddings or not.

The logits are float32 in any precision (softmax and loss need them); the product that makes them,
the largest of the model, runs in the compute dtype, tied or not. Outputs are not
layers: the decoder tracks their `layer` as its attribute `attribute` and they create any other
weight on it (`build`), the names and order the weights files were written with.
"""
from __future__ import annotations

import keras
from keras import ops


class UntiedOutput:
    """logits = W a + b, a layer of its own.

    Args:
        vocab_size: target vocabulary size V.
        units: attentional vector width U.
        embedding: the target embeddings (unused here).
    """

    attribute = "output_layer"

    def __init__(self, vocab_size: int, units: int, embedding):
        self.units = units
        self.layer = keras.layers.Dense(vocab_size, name="output")

    def build(self, layer) -> None:
        self.layer.build((None, self.units))

    def __call__(self, attentional):
        """[.., U] attentional vectors -> [.., V] float32 logits."""
        return ops.cast(self.layer(attentional), "float32")


class TiedOutput:
    """logits = E (P a) + b: the output weights are the target embeddings E (transposed), with P
    a projection from U to E's width when the widths differ (Press & Wolf, 2017).

    Args:
        vocab_size: target vocabulary size V.
        units: attentional vector width U.
        embedding: the target `keras.layers.Embedding`.
    """

    attribute = "output_projection"

    def __init__(self, vocab_size: int, units: int, embedding):
        self.vocab_size, self.units, self.embedding = vocab_size, units, embedding
        self.layer = None
        if embedding.output_dim != units:
            self.layer = keras.layers.Dense(embedding.output_dim, use_bias=False,
                                            name="output_projection")

    def build(self, layer) -> None:
        # In the variables' dtype and read as it is (no autocast): float32 under mixed precision,
        # added to the float32 logits; bfloat16 only in a bfloat16 translator, as every weight.
        self.bias = layer.add_weight((self.vocab_size,), name="output_bias", initializer="zeros",
                                     autocast=False)
        if self.layer is not None:
            self.layer.build((None, self.units))

    def __call__(self, attentional):
        """[.., U] attentional vectors -> [.., V] float32 logits."""
        if self.layer is not None:
            attentional = self.layer(attentional)
        # In the compute dtype, as the untied layer: in bfloat16 the model's largest product
        # runs 1.7x faster here (Zen 4), the logits cast to float32 after it.
        product = ops.matmul(attentional, ops.transpose(ops.cast(self.embedding.embeddings,
                                                                 attentional.dtype)))
        if self.bias.dtype != product.dtype:  # mixed precision: the float32 bias after the product
            return ops.cast(product, "float32") + self.bias
        # One dtype: the addition fuses into the product (a bfloat16 translator: 2-3 % of a beam
        # search).
        return ops.cast(product + self.bias, "float32")


# Keyed by `ModelConfig.tie`: "all" also shares the embeddings with the encoder (Seq2Seq's part).
OUTPUTS = {"none": UntiedOutput, "decoder": TiedOutput, "all": TiedOutput}
