"""Joint vocabularies, tied embeddings and subword sampling."""
import itertools
import threading

import numpy as np
import pytest

from nmt.config import options, recipes
from nmt.errors import ConfigError

LINES = [f"the quick brown fox number {i} jumps over the lazy dog" for i in range(300)]


@pytest.mark.parametrize("text, line, fragment", [
    ("vocab:\n  kind: sentencepiece\nmodel:\n  tie: all\n", 4, "needs one vocabulary"),
    ("vocab:\n  kind: words\n  sampling_alpha: 0.1\n", 3, "needs vocab.kind: sentencepiece"),
])
def test_settings_that_do_not_go_together_are_one_line_errors(tmp_path, text, line, fragment):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        recipes.load_recipe(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_a_clashing_override_is_blamed_on_set(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("vocab:\n  kind: sentencepiece\n  joint: true\n")
    assert recipes.load_recipe(path, ["model.tie=all"]).model.tie == "all"
    with pytest.raises(ConfigError) as err:
        recipes.load_recipe(path, ["model.tie=all", "vocab.joint=false"])
    assert str(err.value).startswith("--set: model.tie: all")
    with pytest.raises(ConfigError, match="sampling_alpha must be in"):
        recipes.load_recipe(path, ["vocab.sampling_alpha=1.5"])


def test_a_joint_vocabulary_is_one_tokenizer_trained_on_both_sides():
    from nmt.data.prepare import build_tokenizers
    from vocab import UNK
    pairs = [(f"für größere straßen {i}", line) for i, line in enumerate(LINES)]
    for kind in ("sentencepiece", "words"):
        settings = options.VocabConfig(kind=kind, size=80, joint=True)
        src, tgt = build_tokenizers(settings, lambda: iter(pairs))
        assert src is tgt
        assert UNK not in src.encode("für größere straßen") + src.encode("the quick fox")
        alone = build_tokenizers(options.VocabConfig(kind=kind, size=80), lambda: iter(pairs))[0]
        assert UNK in alone.encode("the quick fox")  # a source-only vocabulary lacks English


def test_sampling_varies_the_segmentation_and_keeps_the_text():
    import vocab
    tok = vocab.train("sentencepiece", LINES, size=80)
    sampler = tok.sampling(0.1, itertools.count(1))
    line = "the lazy brown dog jumps over the quick fox"
    segmentations = {tuple(sampler.encode(line)) for _ in range(100)}
    assert len(segmentations) >= 2 and segmentations != {tuple(tok.encode(line))}
    assert all(sampler.decode(list(ids)) == line for ids in segmentations)
    assert {tuple(tok.encode(line)) for _ in range(10)} == {tuple(tok.encode(line))}


def test_each_thread_samples_its_own_segmentations_and_the_seeds_repeat_them():
    """tf.data reads each epoch in new threads, and SentencePiece seeds a generator per thread
    from one global seed: without a seed per thread every epoch would repeat the first one's."""
    import vocab
    tok = vocab.train("sentencepiece", LINES, size=80)
    # Two draws of the line once agree with odds 0.68, of four copies 0.22: 20 draws of one
    # copy coincided across two seeds in one CI run (odds 4e-4), 50 of four have odds 1e-33.
    line = " ".join(["the lazy brown dog jumps over the quick fox"] * 4)

    def in_a_new_thread(sampler):
        drawn = []
        thread = threading.Thread(
            target=lambda: drawn.extend(tuple(sampler.encode(line)) for _ in range(50)))
        thread.start()
        thread.join()
        return drawn

    sampler = tok.sampling(0.2, itertools.count(7))
    first, second = in_a_new_thread(sampler), in_a_new_thread(sampler)
    assert first != second
    assert in_a_new_thread(tok.sampling(0.2, itertools.count(7))) == first
    assert in_a_new_thread(tok.sampling(0.2, itertools.count(9))) != first


def test_sampling_takes_any_recipe_seed():
    """SentencePiece takes 32-bit seeds: the per-line seeds of a large `train.seed` wrap."""
    import vocab
    from nmt.data.prepare import training_tokenizers
    tok = vocab.train("sentencepiece", LINES, size=80)
    settings = options.VocabConfig(kind="sentencepiece", sampling_alpha=0.2)
    for seed in (0, 4_295, 10**12):
        sampler = training_tokenizers(settings, (tok, tok), seed)[0]
        assert sampler.decode(sampler.encode(LINES[0])) == LINES[0]


@pytest.mark.parametrize("tie, embedding_dim", [("decoder", 16), ("decoder", 32), ("all", 16)])
def test_tied_logits_use_the_target_embeddings(tf, tie, embedding_dim):
    from nmt.model.seq2seq import Seq2Seq
    sizes = dict(embedding_dim=embedding_dim, encoder_units=8, encoder_layers=1,
                 decoder_units=32, attention_units=8, dropout=0.0)
    tied = Seq2Seq(options.ModelConfig(tie=tie, **sizes), 40, 40)
    untied = Seq2Seq(options.ModelConfig(**sizes), 40, 40)
    decoder = tied.decoder
    assert not hasattr(decoder, "output_layer")
    assert (tied.encoder.embedding is decoder.embedding) == (tie == "all")
    # V x U output kernel gone; a U x E projection only when the widths differ
    saved = 40 * 32 - (32 * embedding_dim if embedding_dim != 32 else 0)
    saved += 40 * embedding_dim if tie == "all" else 0
    assert untied.count_params() - tied.count_params() == saved
    attentional = np.random.default_rng(0).normal(size=(3, 32)).astype("float32")
    projected = attentional if embedding_dim == 32 else \
        attentional @ decoder.output_projection.kernel.numpy()
    decoder.embedding.embeddings.assign(decoder.embedding.embeddings * 3.0)  # changes the logits
    expected = projected @ decoder.embedding.embeddings.numpy().T + decoder.output_head.bias.numpy()
    np.testing.assert_allclose(decoder.logits(attentional).numpy(), expected, rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "bfloat16"])
def test_tied_output_bias_is_float32_but_in_a_bfloat16_translator(tf, policy):
    """Mixed precision trains a float32 bias, added unrounded to the float32 logits; a bfloat16
    translator's bias is bfloat16, as its other weights, added in the bfloat16 product."""
    from nmt.model.seq2seq import Seq2Seq
    from nmt.system import precision
    with precision.dtype_policy(policy):
        model = Seq2Seq(options.ModelConfig(tie="decoder", embedding_dim=16, encoder_units=8,
                                            decoder_units=16, attention_units=8), 40, 40)
    head = model.decoder.output_head
    assert head.bias.dtype == ("float32" if policy == "mixed_bfloat16" else "bfloat16")
    rng = np.random.default_rng(0)
    head.bias.assign(rng.normal(size=40).astype("float32"))  # not all bfloat16 numbers
    attentional = tf.cast(rng.normal(size=(3, 16)).astype("float32"), "bfloat16")
    product = tf.matmul(attentional, tf.cast(model.decoder.embedding.embeddings, "bfloat16"),
                        transpose_b=True)
    expected = (tf.cast(product, "float32") + head.bias if policy == "mixed_bfloat16"
                else tf.cast(product + head.bias, "float32"))
    logits = model.decoder.logits(attentional)
    assert logits.dtype == "float32"
    np.testing.assert_array_equal(logits.numpy(), expected.numpy())


def test_a_bfloat16_translator_loads_a_float32_tied_bias_rounded(tf, tmp_path):
    """Weights files hold float32 (training's variables): a bfloat16 translator's tied bias is
    their value rounded to bfloat16 once, as it loads."""
    from nmt.model.seq2seq import Seq2Seq
    from nmt.storage.weights import load_weights
    from nmt.system import precision
    config = options.ModelConfig(tie="decoder", embedding_dim=16, encoder_units=8,
                                 decoder_units=16, attention_units=8)
    trained = Seq2Seq(config, 40, 40)
    bias = np.random.default_rng(1).normal(size=40).astype("float32")
    trained.decoder.output_head.bias.assign(bias)
    trained.save_weights(tmp_path / "best.weights.h5")
    with precision.dtype_policy("bfloat16"):
        translator = Seq2Seq(config, 40, 40)
    load_weights(translator, tmp_path / "best.weights.h5")
    loaded = translator.decoder.output_head.bias
    assert loaded.dtype == "bfloat16"
    np.testing.assert_array_equal(tf.cast(loaded, "float32"),
                                  tf.cast(tf.cast(bias, "bfloat16"), "float32"))


def test_tie_all_needs_equal_vocabularies(tf):
    from nmt.model.seq2seq import Seq2Seq
    with pytest.raises(ValueError, match="one vocabulary"):
        Seq2Seq(options.ModelConfig(tie="all", embedding_dim=8, encoder_units=8, decoder_units=8,
                                    attention_units=8), 40, 30)


@pytest.mark.parametrize("tie", ["none", "all"])
def test_embedding_init_normal_draws_both_sides_from_n_0_01(tf, tie):
    from nmt.model.seq2seq import Seq2Seq
    sizes = dict(embedding_dim=64, encoder_units=8, encoder_layers=1, decoder_units=16,
                 attention_units=8, tie=tie)
    normal = Seq2Seq(options.ModelConfig(embedding_init="normal", **sizes), 500, 500)
    uniform = Seq2Seq(options.ModelConfig(**sizes), 500, 500)
    for model in (normal, uniform):
        assert model.model_config.embedding_init == ("normal" if model is normal else "uniform")
    for layer in (normal.encoder.embedding, normal.decoder.embedding):
        assert float(np.std(layer.embeddings.numpy())) == pytest.approx(0.1, rel=0.05)
    for layer in (uniform.encoder.embedding, uniform.decoder.embedding):
        assert float(np.max(np.abs(layer.embeddings.numpy()))) <= 0.05
