"""The error-analysis report of `nmt evaluate` on a trained model, and `nmt score` agreeing with
it."""
import json

import numpy as np
import pytest

from nmt.evaluation import analysis, report


@pytest.fixture(scope="module")
def evaluation(reverse_run, tmp_path_factory):
    """A report on inputs partly longer than any training string, so the model makes errors."""
    from nmt.translation.translate import Translator
    folder = tmp_path_factory.mktemp("eval")
    rng = np.random.default_rng(5)
    sources = [" ".join(map(str, rng.integers(0, 10, n))) for n in rng.integers(2, 16, 40)]
    (folder / "src").write_text("".join(s + "\n" for s in sources))
    (folder / "ref").write_text("".join(" ".join(reversed(s.split())) + "\n" for s in sources))
    translator = Translator(reverse_run, beam_size=2)
    result = report.run_evaluation(translator, folder / "src", folder / "ref", folder / "out",
                                   beams=(1, 2, 4), tokenize="none", heatmaps=3, show=[1])
    return folder, result, translator


@pytest.mark.slow
def test_report_totals_equal_a_recomputation_from_its_json(evaluation):
    folder, _, translator = evaluation
    out = folder / "out"
    saved = json.loads((out / "report.json").read_text())
    sentences = saved["sentences"]
    assert len(sentences) == 40
    for category in analysis.CATEGORIES:
        assert saved["counts"][category] == sum(s["category"] == category for s in sentences)
    assert saved["counts"]["search_error"] + saved["counts"]["model_error"] > 0
    # Recompute each number from the files, through other paths than the report's.
    hypotheses = (out / "hypotheses.txt").read_text().splitlines()
    references = (folder / "ref").read_text().splitlines()
    sources = (folder / "src").read_text().splitlines()
    assert [s["hypothesis"] for s in sentences] == hypotheses
    import sacrebleu
    assert saved["scores"][0]["score"] == pytest.approx(
        sacrebleu.corpus_bleu(hypotheses, [references], tokenize="none").score)
    from nmt.data import batching
    tok = translator.tgt_tokenizer
    for s, source, reference, hypothesis in zip(sentences, sources, references, hypotheses):
        ids = batching.pad_batch([batching.source_ids(translator.src_tokenizer, source)] * 2)
        (ref, hyp), _ = translator.searcher.score(ids, [tok.encode(reference),
                                                        tok.encode(hypothesis)], translator.decode)
        assert (s["reference_score"], s["hypothesis_score"]) == pytest.approx(
            (ref.score, hyp.score), abs=1e-4)
        expected = "correct" if hypothesis == reference else (
            "search_error" if ref.score > hyp.score else "model_error")
        assert s["category"] == expected
    markdown = (out / "report.md").read_text()
    for category, row in report.totals(sentences).items():
        assert f"| {category} | {row['sentences']} | {100 * row['share']:.1f} % |" in markdown
    for point in saved["sweep"]:
        assert point["search_error_rate"] == pytest.approx(
            point["search_errors"] / point["comparable"])
        if point["beam_size"] == saved["beam_size"]:  # the same search as the classes above
            assert point["search_errors"] == saved["counts"]["search_error"]
            assert point["comparable"] == len(sentences) - saved["counts"]["oov"]
    assert (out / "hypotheses.txt").read_text().count("\n") == 40


@pytest.mark.slow
def test_report_has_figures_and_signatures(evaluation):
    folder, result, _ = evaluation
    out = folder / "out"
    assert (out / "figures" / "beam_sweep.png").stat().st_size > 1000
    lines = [entry["line"] for entry in result["heatmaps"]]
    assert 1 in lines and len(lines) >= 3
    for entry in result["heatmaps"]:
        assert (out / entry["figure"]).stat().st_size > 1000
    assert "tok:none" in result["scores"][0]["signature"]
    assert "| metric | score | sacrebleu signature |" in (out / "report.md").read_text()


@pytest.mark.slow
def test_nmt_score_gives_the_numbers_of_the_error_analysis(evaluation, capsys):
    from nmt import cli
    folder, result, translator = evaluation
    assert cli.main(["score", "--model", str(translator.model_dir), "--src",
                     str(folder / "src"), "--tgt", str(folder / "ref"), "--per-token"]) == 0
    lines = capsys.readouterr().out.splitlines()
    references = (folder / "ref").read_text().splitlines()
    assert len(lines) == len(result["sentences"]) == 40
    for line, sentence, reference in zip(lines, result["sentences"], references):
        log_prob, score, tokens, per_token = line.split("\t")
        assert (float(log_prob), float(score)) == pytest.approx(
            (sentence["reference_log_prob"], sentence["reference_score"]), abs=1e-4)
        assert int(tokens) == len(reference.split()) + 1 == len(per_token.split())
        assert sum(map(float, per_token.split())) == pytest.approx(float(log_prob), abs=1e-4)
