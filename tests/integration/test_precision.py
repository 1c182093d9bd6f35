"""bfloat16 translation against float32 on the same weights, and what the precision options do."""
import json
import logging
import shutil

import numpy as np
import pytest
from tests.helpers import SCORE_TOLERANCE, reverse_pairs, write_lines


def test_bfloat16_translations_agree_with_float32(reverse_run):
    from nmt.translation.translate import Translator
    lines = [s for s, _ in reverse_pairs(300, seed=11, max_len=10)]  # longer than in training
    found = {}
    for precision in ("float32", "bfloat16"):
        translator = Translator(reverse_run, precision=precision)
        assert translator.model.decoder.compute_dtype == precision
        found[precision] = [t[0] for t in translator.translate(lines)]
    same = [(a, b) for a, b in zip(found["float32"], found["bfloat16"]) if a.text == b.text]
    assert len(same) >= 0.95 * len(lines)
    gaps = [abs(a.score - b.score) / (len(a.ids) + 1) for a, b in same]
    assert max(gaps) <= SCORE_TOLERANCE, max(gaps)
    assert any(gap > 0 for gap in gaps)  # the two really computed in different precisions


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_one_is_greedy_in_bfloat16(tf, alpha):
    import keras

    from nmt.config.options import DecodeConfig
    from nmt.data.batching import pad_batch
    from nmt.config.options import ModelConfig
    from nmt.model.seq2seq import Seq2Seq
    from nmt.search.decoding import Searcher
    from nmt.system import precision
    keras.utils.set_random_seed(5)
    with precision.dtype_policy("bfloat16"):
        model = Seq2Seq(ModelConfig(embedding_dim=8, encoder_units=6, encoder_layers=1,
                                    decoder_units=10, attention_units=7, dropout=0.0), 12, 9)
    kernel = model.decoder.output_layer.kernel
    kernel.assign(kernel * 4.0)  # sharper, uneven distributions
    rng = np.random.default_rng(2)
    sources = pad_batch([list(rng.integers(4, 12, size=rng.integers(1, 7))) + [2]
                         for _ in range(20)])
    search, decode = Searcher(model), DecodeConfig(beam_size=1, alpha=alpha)
    greedy = search.greedy(sources, decode)
    beam = [hyps[0] for hyps in search.beam(sources, decode)]
    assert [h.ids for h in beam] == [h.ids for h in greedy]
    np.testing.assert_allclose([h.score for h in beam], [h.score for h in greedy], atol=1e-6)
    assert len({len(h.ids) for h in greedy}) > 2  # the outputs differ in length


def test_forced_scoring_stays_float32(reverse_run):
    from nmt.translation.translate import Translator
    translator = Translator(reverse_run, precision="bfloat16")
    assert translator.searcher.model.decoder.compute_dtype == "bfloat16"
    assert translator.scorer.model.decoder.compute_dtype == "float32"
    assert {v.dtype for v in translator.scorer.model.weights} == {"float32"}
    assert Translator(reverse_run).scorer is not None


def test_model_folders_of_earlier_versions_load(reverse_run, tmp_path):
    """Their recipe.yaml has train.mixed_precision and no precision keys."""
    from nmt.translation.translate import Translator
    old = shutil.copytree(reverse_run, tmp_path / "old")
    text = (old / "recipe.yaml").read_text()
    assert "  precision: float32\n" in text
    text = text.replace("  precision: float32\n", "", 1)  # train's, written first
    text = text.replace("  precision: float32\n", "")  # decode's
    (old / "recipe.yaml").write_text(text.replace("train:\n", "train:\n  mixed_precision: false\n"))
    assert Translator(old).translate(["1 2 3"])[0][0].text == "3 2 1"


def test_cpu_bf16_support_reads_the_flags(tmp_path):
    from nmt.system.precision import cpu_bf16_support
    info = write_lines(tmp_path / "cpuinfo", ["processor\t: 0", "flags\t\t: fpu avx512f amx_bf16 "
                                                                "avx512_bf16 sse"])
    assert cpu_bf16_support(str(info)) == ["avx512_bf16", "amx_bf16"]
    plain = write_lines(tmp_path / "plain", ["flags\t\t: fpu avx2 avx512f"])
    assert cpu_bf16_support(str(plain)) == []
    assert cpu_bf16_support(str(tmp_path / "missing")) == []


def test_bfloat16_without_cpu_support_warns_once(monkeypatch, caplog):
    from nmt.system import precision
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: [])
    monkeypatch.setattr(precision, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="nmt"):
        precision.warn_if_slow("bfloat16")
        precision.warn_if_slow("bfloat16")
        precision.warn_if_slow("float32")
    assert len(caplog.records) == 1
    assert "slower than float32" in caplog.records[0].getMessage()
    monkeypatch.setattr(precision, "cpu_bf16_support", lambda: ["avx512_bf16"])
    monkeypatch.setattr(precision, "_warned", set())
    caplog.clear()
    precision.warn_if_slow("mixed_bfloat16")
    assert not caplog.records


def test_bench_translate_alternates_precisions(reverse_run, tmp_path, capsys):
    from nmt import cli
    from nmt.config import recipes
    from nmt.model import flops
    source = write_lines(tmp_path / "in.txt", [s for s, _ in reverse_pairs(20, seed=4)])
    assert cli.main(["bench", "translate", "--model", str(reverse_run), "-i", str(source),
                     "--rounds", "2", "--precision", "float32,bfloat16"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["precision"] for r in results] == ["float32", "bfloat16"]
    config = recipes.load_recipe(reverse_run / "recipe.yaml").model
    for result in results:
        assert len(result["rounds_seconds"]) == 2 and "cpu_bf16" in result
        # The search's roofline: the model's FLOPs per sentence at the measured lengths.
        assert result["model_mflop_per_sentence"] == pytest.approx(
            flops.decoding_flops_per_sentence(
                config, result["target_vocab_size"], result["mean_source_length"],
                result["mean_output_length"], result["beam_size"]) / 1e6, rel=1e-3)
        assert result["achieved_gflops"] == pytest.approx(
            result["model_mflop_per_sentence"] * result["sentences_per_sec"] / 1e3, rel=0.02)
        # (At this model's tiny shapes the limit is mostly a tf.function call's own cost.)
        assert result["fraction_of_limit"] == pytest.approx(
            result["achieved_gflops"] / result["matmul_limit_gflops"], rel=0.02)
        assert result["fraction_of_limit_per_cpu_s"] > 0
    # What bfloat16's products alone gain here, beside what the search gains.
    assert set(results[1]["vs_first"]) == {"wall", "cpu", "matmul_limit"}
    assert results[1]["vs_first"]["matmul_limit"] == pytest.approx(
        results[1]["matmul_limit_gflops"] / results[0]["matmul_limit_gflops"], rel=1e-2)


def test_precision_option_is_checked(capsys):
    from nmt import cli
    with pytest.raises(SystemExit):
        cli.main(["bench", "translate", "--model", "m", "-i", "x", "--precision", "float64"])
    assert "expected some of float32, bfloat16" in capsys.readouterr().err


def test_evaluate_searches_in_bfloat16_and_scores_in_float32(reverse_run, tmp_path):
    from nmt.data import batching
    from nmt.evaluation import report
    from nmt.search.decoding import score_all
    from nmt.translation.translate import Translator
    pairs = reverse_pairs(12, seed=6, max_len=12)
    source = write_lines(tmp_path / "src", [s for s, _ in pairs])
    reference = write_lines(tmp_path / "ref", [t for _, t in pairs])
    translator = Translator(reverse_run, precision="bfloat16")
    result = report.run_evaluation(translator, source, reference, tmp_path / "out", beams=(),
                                   tokenize="none", heatmaps=0)
    assert result["precision"] == "bfloat16"
    assert "search in bfloat16" in (tmp_path / "out" / "report.md").read_text()
    float32 = Translator(reverse_run)
    sources = [batching.source_ids(float32.src_tokenizer, s) for s, _ in pairs]
    expected, _ = score_all(float32.searcher, sources,
                            [float32.tgt_tokenizer.encode(t) for _, t in pairs], float32.decode)
    np.testing.assert_allclose([s["reference_score"] for s in result["sentences"]],
                               [h.score for h in expected], atol=1e-6)


def test_bench_matmul_reports_both_precisions(capsys):
    from nmt import bench
    found = bench.bench_matmul(shapes=((64, 128, 128),), repeats=2, rounds=2, threads=1)
    assert len(found) == 1 and found[0]["m_k_n"] == [64, 128, 128]
    assert found[0]["float32_gflops"] > 0 and found[0]["bfloat16_gflops"] > 0
    assert found[0]["ratio"] == pytest.approx(
        found[0]["bfloat16_gflops"] / found[0]["float32_gflops"], rel=0.05)
    assert "cpu_bf16" in found[0]


def test_float16_on_a_cpu_warns_once(monkeypatch, caplog):
    from nmt.system import precision
    monkeypatch.setattr(precision, "_has_gpu", lambda: False)
    monkeypatch.setattr(precision, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="nmt"):
        precision.warn_if_slow("mixed_float16")
        precision.warn_if_slow("mixed_float16")
    assert len(caplog.records) == 1
    assert "mixed_float16 on a CPU is slow" in caplog.records[0].getMessage()


def test_bench_train_reports_how_far_from_the_matrix_product_limit(tiny_recipe):
    from nmt import bench
    from nmt.config import recipes
    from nmt.model import flops
    results = bench.bench_train(tiny_recipe, steps=2, warmup=1, rounds=1, threads=1,
                                precisions=("float32", "mixed_bfloat16"))
    assert results[1]["vs_first"]["matmul_limit"] == pytest.approx(
        results[1]["matmul_limit_gflops"] / results[0]["matmul_limit_gflops"], rel=1e-2)
    result = results[0]
    recipe = recipes.load_recipe(tiny_recipe)
    assert result["model_mflop_per_target_token"] == pytest.approx(
        flops.training_flops_per_target_token(recipe.model, result["target_vocab_size"],
                                              result["source_per_target_token"],
                                              result["mean_target_length"]) / 1e6, rel=1e-2)
    assert result["achieved_gflops"] == pytest.approx(
        result["model_mflop_per_target_token"] * result["target_tokens_per_sec"] / 1e3,
        rel=0.02)
    # (At this model's tiny shapes the limit is mostly a tf.function call's own cost.)
    assert result["fraction_of_limit"] == pytest.approx(
        result["achieved_gflops"] / result["matmul_limit_gflops"], rel=0.02)
    assert result["fraction_of_limit_per_cpu_s"] > 0
