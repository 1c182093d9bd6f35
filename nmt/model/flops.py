"""The model's arithmetic, counted from its config: multiply-adds of the matrix products per part,
for a sentence pair of given lengths, and the shapes of those products.

`nmt bench` divides a measured speed by these counts to say how far a training or a search runs
from the machine's matrix-product rate at the same shapes. Only products are counted: the
element-wise work (gates, tanh, softmax, the loss) and the backward pass's extra products are
not, so training costs 3 forward passes (forward, and two products per product backward).
"""
from __future__ import annotations

from typing import NamedTuple

from nmt.config.options import ModelConfig

GATES = {"lstm": 4, "gru": 3}
# Forward + backward (the gradients of both operands of every product): 3 forward passes.
TRAINING_PASSES = 3


class Product(NamedTuple):
    """One part's products for one sentence pair: its multiply-adds, and the (k, n) of the
    matrix it multiplies by and how many rows per sentence reach it in one call (`rows`: the
    target length for products over all positions at once, 1 for a product per time step)."""
    multiply_adds: float
    k: int
    n: int
    rows: float


def products(config: ModelConfig, tgt_vocab_size: int, source_len: float,
             target_len: float) -> dict[str, Product]:
    """The forward pass's matrix products of one sentence pair of `source_len` source and
    `target_len` target positions (EOS included), by part."""
    s, t = source_len, target_len
    e, h, u, a = (config.embedding_dim, config.encoder_units, config.decoder_units,
                  config.attention_units)
    gates, memory = GATES[config.cell], 2 * config.encoder_units
    parts = {}
    # Encoder: per layer and direction, the input and the recurrent product per position.
    encoder_input = sum(2 * s * (e if layer == 0 else memory) * gates * h
                        for layer in range(config.encoder_layers))
    parts["encoder_input"] = Product(encoder_input, memory, gates * h, s)
    parts["encoder_recurrent"] = Product(2 * config.encoder_layers * s * h * gates * h, h,
                                         gates * h, 1)
    # Decoder: the input projection of all positions at once, then per step the recurrent
    # product over [fed vector; state] (GRU: two products of U x GU).
    parts["decoder_input"] = Product(t * e * gates * u, e, gates * u, t)
    parts["decoder_recurrent"] = Product(t * 2 * u * gates * u, 2 * u, gates * u, 1)
    if config.attention == "additive":
        parts["attention_keys"] = Product(s * memory * a, memory, a, s)
        scores = t * (u * a + s * a)  # the query's projection, then v . tanh(keys + query)
    else:
        parts["attention_keys"] = Product(s * memory * u, memory, u, s)
        scores = t * s * u
    parts["attention_scores_context"] = Product(scores + t * s * memory, u, a, 1)
    parts["attentional_vector"] = Product(t * (u + memory) * u, u + memory, u, 1)
    output_width = u
    if config.tie != "none" and e != u:
        parts["output_projection"] = Product(t * u * e, u, e, t)
        output_width = e
    parts["output"] = Product(t * output_width * tgt_vocab_size, output_width, tgt_vocab_size, t)
    return parts


def training_flops_per_target_token(config: ModelConfig, tgt_vocab_size: int,
                                    source_per_target: float, target_len: float) -> float:
    """FLOPs (2 per multiply-add) of a training step per target token, for sentences of
    `target_len` target positions and `source_per_target` source positions per target one."""
    forward = sum(p.multiply_adds for p in products(
        config, tgt_vocab_size, source_per_target * target_len, target_len).values())
    return 2 * TRAINING_PASSES * forward / target_len
