"""The model's arithmetic, counted from its config: multiply-adds of the matrix products per part,
for a sentence pair of given lengths in training (`products`) or for a sentence translated with a
beam (`decoding_products`), and the shapes of those products.

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


def _source_side(config: ModelConfig, s: float) -> dict[str, Product]:
    """The products computed once per sentence: the encoder and the attention keys."""
    e, h = config.embedding_dim, config.encoder_units
    gates, memory = GATES[config.cell], 2 * config.encoder_units
    # Per layer and direction, the input and the recurrent product per position.
    encoder_input = sum(2 * s * (e if layer == 0 else memory) * gates * h
                        for layer in range(config.encoder_layers))
    keys = config.attention_units if config.attention == "additive" else config.decoder_units
    return {"encoder_input": Product(encoder_input, memory, gates * h, s),
            "encoder_recurrent": Product(2 * config.encoder_layers * s * h * gates * h, h,
                                         gates * h, 1),
            "attention_keys": Product(s * memory * keys, memory, keys, s)}


def _step(config: ModelConfig, tgt_vocab_size: int, s: float) -> dict[str, tuple]:
    """(multiply-adds, k, n) of the products of one decoder step of one hypothesis, by part: the
    recurrent product over [fed vector; state] (GRU: two products of U x GU), the attention over
    `s` source positions, the attentional vector and the output layer."""
    u, a, memory = config.decoder_units, config.attention_units, 2 * config.encoder_units
    gates = GATES[config.cell]
    if config.attention == "additive":  # the query's projection, then v . tanh(keys + query)
        scores = u * a + s * a
    else:
        scores = s * u
    parts = {"decoder_recurrent": (2 * u * gates * u, 2 * u, gates * u),
             "attention_scores_context": (scores + s * memory, u, a),
             "attentional_vector": ((u + memory) * u, u + memory, u)}
    output_width = u
    if config.tie != "none" and config.embedding_dim != u:
        parts["output_projection"] = (u * config.embedding_dim, u, config.embedding_dim)
        output_width = config.embedding_dim
    parts["output"] = (output_width * tgt_vocab_size, output_width, tgt_vocab_size)
    return parts


# The step's parts computed for all target positions at once in training, after the loop.
AFTER_THE_LOOP = ("output_projection", "output")


def products(config: ModelConfig, tgt_vocab_size: int, source_len: float,
             target_len: float) -> dict[str, Product]:
    """The forward pass's matrix products of one sentence pair of `source_len` source and
    `target_len` target positions (EOS included), teacher-forced as in training, by part."""
    t, gates = target_len, GATES[config.cell]
    parts = _source_side(config, source_len)
    # The input projection of all positions at once, before the loop.
    parts["decoder_input"] = Product(t * config.embedding_dim * gates * config.decoder_units,
                                     config.embedding_dim, gates * config.decoder_units, t)
    for name, (multiply_adds, k, n) in _step(config, tgt_vocab_size, source_len).items():
        parts[name] = Product(t * multiply_adds, k, n, t if name in AFTER_THE_LOOP else 1)
    return parts


def decoding_products(config: ModelConfig, tgt_vocab_size: int, source_len: float,
                      output_len: float, beam_size: int) -> dict[str, Product]:
    """The matrix products of translating one sentence of `source_len` positions into
    `output_len` (EOS included) with a beam of `beam_size`, by part: the encoder and keys once,
    then a decoder step per hypothesis and output position: one hypothesis at the first step,
    `beam_size` at each later one (the fewest a beam search that long computes; greedy: one).
    The steps' input projections are gathered from a table (`Seq2Seq.step_tables`): no product.
    """
    hypothesis_steps = 1 + beam_size * (output_len - 1)
    parts = _source_side(config, source_len)
    for name, (multiply_adds, k, n) in _step(config, tgt_vocab_size, source_len).items():
        parts[name] = Product(hypothesis_steps * multiply_adds, k, n, beam_size)
    return parts


def training_flops_per_target_token(config: ModelConfig, tgt_vocab_size: int,
                                    source_per_target: float, target_len: float) -> float:
    """FLOPs (2 per multiply-add) of a training step per target token, for sentences of
    `target_len` target positions and `source_per_target` source positions per target one."""
    forward = sum(p.multiply_adds for p in products(
        config, tgt_vocab_size, source_per_target * target_len, target_len).values())
    return 2 * TRAINING_PASSES * forward / target_len


def decoding_flops_per_sentence(config: ModelConfig, tgt_vocab_size: int, source_len: float,
                                output_len: float, beam_size: int) -> float:
    """FLOPs (2 per multiply-add) of translating one sentence (`decoding_products`)."""
    return 2 * sum(p.multiply_adds for p in decoding_products(
        config, tgt_vocab_size, source_len, output_len, beam_size).values())
