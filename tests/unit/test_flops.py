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


@pytest.mark.parametrize("cell, attention, tie", [("lstm", "additive", "decoder"),
                                                  ("gru", "multiplicative", "none")])
def test_decoding_multiplies_each_weight_once_per_row_it_reaches(tf, cell, attention, tie):
    """A sentence of S source positions translated into one token: every encoder weight and the
    key kernel multiply once per source position, every weight of a decoder step once; the
    attention adds S dot products of the query's and the memory's widths."""
    import numpy as np

    from nmt.model.seq2seq import Seq2Seq
    config = ModelConfig(cell=cell, attention=attention, tie=tie, embedding_dim=6,
                         encoder_units=5, decoder_units=7, attention_units=4, encoder_layers=2)
    model = Seq2Seq(config, 11, 13)
    decoder, s = model.decoder, 9

    def size(*weights):
        return sum(int(np.prod(w.shape)) for w in weights)

    encoder = size(*(w for rnn in model.encoder.rnns for w in rnn.weights
                     if "kernel" in w.path))
    keys = size(decoder.attention.key_kernel if attention == "additive" else
                decoder.attention.kernel)
    step = size(*(w for w in (getattr(decoder.cell, "feed_kernel", None),
                              decoder.cell.recurrent_kernel, decoder.combine_kernel,
                              getattr(decoder.attention, "query_kernel", None),
                              decoder.embedding.embeddings if tie != "none" else
                              decoder.output_layer.kernel,
                              getattr(decoder, "output_projection", None) and
                              decoder.output_projection.kernel) if w is not None))
    per_position = config.attention_units if attention == "additive" else config.decoder_units
    attend = s * (per_position + 2 * config.encoder_units)
    parts = flops.decoding_products(config, 13, source_len=s, output_len=1, beam_size=5)
    assert parts["encoder_input"].multiply_adds + parts["encoder_recurrent"].multiply_adds == \
        s * encoder
    assert parts["attention_keys"].multiply_adds == s * keys
    assert sum(p.multiply_adds for name, p in parts.items()
               if not name.startswith(("encoder", "attention_keys"))) == step + attend
    assert "decoder_input" not in parts  # gathered from the step table


def test_a_beam_computes_its_steps_for_every_hypothesis():
    config = ModelConfig()
    greedy = flops.decoding_products(config, 8000, source_len=12, output_len=10, beam_size=1)
    beam = flops.decoding_products(config, 8000, source_len=12, output_len=10, beam_size=5)
    training = flops.products(config, 8000, source_len=12, target_len=10)
    for name in ("encoder_input", "encoder_recurrent", "attention_keys"):
        assert beam[name] == greedy[name] == training[name]
    for name in ("decoder_recurrent", "attention_scores_context", "attentional_vector", "output"):
        assert greedy[name].multiply_adds == training[name].multiply_adds
        assert beam[name].multiply_adds == greedy[name].multiply_adds * (1 + 5 * 9) / 10
        assert beam[name].rows == 5
    assert flops.decoding_flops_per_sentence(config, 8000, 12, 10, 5) == \
        2 * sum(p.multiply_adds for p in beam.values())
