"""The model's arithmetic counted from its config (nmt.model.flops), against the model's own
weights."""
import pytest

from nmt.config.options import ModelConfig
from nmt.model import flops


@pytest.mark.parametrize("cell, attention, tie", [("lstm", "additive", "none"),
                                                  ("gru", "multiplicative", "decoder")])
def test_each_counted_product_multiplies_by_a_real_kernel(tf, cell, attention, tie):
    from nmt.model.seq2seq import Seq2Seq
    config = ModelConfig(cell=cell, attention=attention, tie=tie, embedding_dim=6,
                         encoder_units=5, decoder_units=7, attention_units=4, encoder_layers=2)
    model = Seq2Seq(config, 11, 13)
    decoder = model.decoder
    kernels = {"decoder_input": decoder.cell.input_kernel,
               "attentional_vector": decoder.combine_kernel,
               "attention_keys": decoder.attention.key_kernel if attention == "additive" else
               decoder.attention.kernel,
               "output": decoder.output_layer.kernel if tie == "none" else
               decoder.embedding.embeddings}
    parts = flops.products(config, 13, source_len=9, target_len=4)
    for name, kernel in kernels.items():
        shape = tuple(kernel.shape) if name != "output" or tie == "none" else \
            tuple(reversed(kernel.shape))
        assert (parts[name].k, parts[name].n) == shape, name
    if cell == "lstm":
        assert (parts["decoder_recurrent"].k, parts["decoder_recurrent"].n) == tuple(
            decoder.cell.recurrent_kernel.shape)
    assert ("output_projection" in parts) == (tie != "none")


def test_the_count_grows_with_the_lengths_as_the_model_computes():
    """Target-side parts grow with the target length, the encoder with the source length."""
    config = ModelConfig()
    short, long = (flops.products(config, 8000, source_len=10, target_len=t) for t in (10, 20))
    for name in ("decoder_input", "decoder_recurrent", "attentional_vector", "output"):
        assert long[name].multiply_adds == 2 * short[name].multiply_adds
    assert long["attention_scores_context"].multiply_adds == \
        2 * short["attention_scores_context"].multiply_adds
    doubled = flops.products(config, 8000, source_len=20, target_len=10)
    assert doubled["encoder_recurrent"].multiply_adds == \
        2 * short["encoder_recurrent"].multiply_adds
    per_token = flops.training_flops_per_target_token(config, 8000, 1.0, 10)
    assert per_token == pytest.approx(
        6 * sum(p.multiply_adds for p in short.values()) / 10)
