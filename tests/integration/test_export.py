"""`nmt export`: a SavedModel that a process without nmt loads and translates with, giving the
translations and scores of `nmt translate` (and of forced scoring for the `score` signature)."""
import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tests.helpers import train_reverse, write_recipe

# Run in a fresh interpreter: TensorFlow (and tensorflow_text for SentencePiece) only, never nmt.
FRESH = r"""
import json, sys, time
import tensorflow as tf
request = json.load(open(sys.argv[1], encoding="utf-8"))
if request["sentencepiece"]:
    import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)
start = time.perf_counter()
loaded = tf.saved_model.load(request["export"])
translate, score = loaded.signatures["serving_default"], loaded.signatures["score"]
found = translate(lines=tf.constant(request["lines"], tf.string))
scored = score(source=tf.constant(request["sources"], tf.string),
               target=tf.constant(request["targets"], tf.string))
try:
    translate(lines=tf.constant([b"1 2", b"\xff 3"]))
    invalid_utf8 = "accepted"
except tf.errors.InvalidArgumentError as err:
    invalid_utf8 = str(err)
json.dump({"invalid_utf8": invalid_utf8, "translations": [[t.decode("utf-8") for t in row]
                            for row in found["translations"].numpy()],
           "scores": found["scores"].numpy().tolist(),
           "log_probs": found["log_probs"].numpy().tolist(),
           "forced_log_prob": scored["log_prob"].numpy().tolist(),
           "forced_score": scored["score"].numpy().tolist(),
           "nmt_modules": [m for m in sys.modules if m.split(".")[0] in ("nmt", "vocab")]},
          sys.stdout)
"""

# Blank and whitespace-only lines (U+3000 counts as whitespace), unknown words only, very short
# and very long lines in one batch.
ODD_LINES = ["3 1 4", "", "  \t ", "\u3000", "foo bar baz", "7", "x 2 y 9",
             " ".join("1234567890" * 3), "5 5", "8 6 4 2 0 1 3 5 7 9 8 6"]


def fresh_translate(export_dir: Path, lines, pairs, sentencepiece: bool, tmp_path: Path) -> dict:
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"export": str(export_dir), "lines": lines,
                                   "sources": [s for s, _ in pairs],
                                   "targets": [t for _, t in pairs],
                                   "sentencepiece": sentencepiece}), encoding="utf-8")
    done = subprocess.run([sys.executable, "-c", FRESH, str(request)], capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout)
    assert result["nmt_modules"] == []
    assert "line is not valid UTF-8 (0-based index):] [1]" in result["invalid_utf8"]
    return result


def assert_as_translate(result: dict, translator, lines, nbest: int):
    """Texts identical to Translator.translate's, scores and log p within 1e-4; ranks it leaves
    empty are "" and -inf."""
    expected = translator.translate(lines, nbest)
    assert len(result["translations"]) == len(lines)
    for row, hyps in enumerate(expected):
        texts, scores, log_probs = (result[key][row] for key in
                                    ("translations", "scores", "log_probs"))
        assert len(texts) == nbest
        assert texts[:len(hyps)] == [h.text for h in hyps], (row, lines[row])
        np.testing.assert_allclose(scores[:len(hyps)], [h.score for h in hyps], atol=1e-4)
        np.testing.assert_allclose(log_probs[:len(hyps)], [h.log_prob for h in hyps], atol=1e-4)
        assert texts[len(hyps):] == [""] * (nbest - len(hyps))
        assert all(s == -math.inf for s in scores[len(hyps):] + log_probs[len(hyps):])


def assert_forced_scores(result: dict, translator, pairs):
    hyps, _ = translator.score([s for s, _ in pairs], [t for _, t in pairs])
    np.testing.assert_allclose(result["forced_log_prob"], [h.log_prob for h in hyps], atol=1e-4)
    np.testing.assert_allclose(result["forced_score"], [h.score for h in hyps], atol=1e-4)


def export_and_compare(translator, lines, pairs, tmp_path, nbest: int) -> dict:
    from nmt.translation.export import export
    exported = export(translator, tmp_path / "export", nbest)
    result = fresh_translate(exported.path, lines, pairs, exported.settings["tensorflow_text"],
                             tmp_path)
    assert_as_translate(result, translator, lines, nbest)
    assert_forced_scores(result, translator, pairs)
    return result


def cut_small(translator, max_input_len=5, batch_size=3):
    """Long lines cut into pieces, and several length-sorted batches, on a short input."""
    translator.decode = dataclasses.replace(translator.decode, max_input_len=max_input_len,
                                            batch_size=batch_size)
    return translator


def random_word_model(folder: Path) -> Path:
    """A model folder of a tiny word model with random weights (no training): digits as words,
    long lines cut in pieces of 4 tokens, batches of 3."""
    import keras

    from nmt.config import recipes
    from nmt.model.seq2seq import Seq2Seq
    from nmt.storage import modeldir, weights
    from vocab.words import WordTokenizer
    recipe = recipes.recipe_from_dict({
        "model": {"embedding_dim": 8, "encoder_units": 8, "encoder_layers": 1,
                  "decoder_units": 16, "attention_units": 8, "dropout": 0.0},
        "decode": {"beam_size": 3, "alpha": 0.6, "max_input_len": 4, "batch_size": 3,
                   "max_len_ratio": 1.5, "max_len_offset": 2}})
    tokenizer = WordTokenizer.train([" ".join("0123456789")], size=20)
    keras.utils.set_random_seed(3)
    model = Seq2Seq(recipe.model, len(tokenizer), len(tokenizer))
    kernel = model.decoder.output_layer.kernel
    kernel.assign(kernel * 4.0)  # sharper distributions: outputs of several lengths
    run = modeldir.ModelDir(folder)
    folder.mkdir(parents=True)
    modeldir.save_description(run, recipe, len(tokenizer), len(tokenizer))
    modeldir.save_tokenizers(run, tokenizer, tokenizer)
    weights.save_weights(model, run.best)
    return folder


@pytest.mark.parametrize("beam_size, nbest", [(1, 1), (3, 3)], ids=["greedy", "beam3-nbest3"])
def test_export_and_translate_agree_on_a_tiny_model(tf, tmp_path, beam_size, nbest):
    """The fast tier's guard against drift between the two pipelines (`nmt.search.rules`):
    blank, unknown-only, over-long (cut) and ordinary lines, n-best ranks and forced scores."""
    from nmt.translation.export import export
    from nmt.translation.translate import Translator
    translator = Translator(random_word_model(tmp_path / "model"), beam_size=beam_size)
    lines = ["3 1 4", "", " \t ", "\u3000", "foo bar", "7", "1 2 3 4", "5 9 x 2 6 5 3 5 8 9",
             " ".join("0123456789") * 2, "8 6 4 2 0 1"]
    exported = export(translator, tmp_path / "export", nbest)
    loaded = tf.saved_model.load(str(exported.path))
    found = loaded.signatures["serving_default"](lines=tf.constant(lines))
    result = {key: found[key].numpy().tolist() for key in ("scores", "log_probs")}
    result["translations"] = [[t.decode() for t in row] for row in found["translations"].numpy()]
    assert_as_translate(result, translator, lines, nbest)
    # The last three lines are cut (the last has 6 tokens): one rank each.
    assert [len(t) for t in translator.translate(lines, nbest)] == [nbest] * 7 + [1] * 3
    assert len({len(t.ids) for hyps in translator.translate(lines) for t in hyps}) > 2
    pairs = [("1 2 3", "3 2 1"), ("", ""), ("foo 7", "7 bar"), (lines[8], "1 2")]
    scored = loaded.signatures["score"](source=tf.constant([s for s, _ in pairs]),
                                        target=tf.constant([t for _, t in pairs]))
    assert_forced_scores({"forced_log_prob": scored["log_prob"].numpy(),
                          "forced_score": scored["score"].numpy()}, translator, pairs)


@pytest.mark.slow
@pytest.mark.parametrize("beam_size, nbest", [(1, 1), (3, 3)], ids=["greedy", "beam3-nbest3"])
def test_word_model_export_translates_as_nmt_translate(reverse_run, tmp_path, beam_size, nbest):
    from nmt.translation.translate import Translator
    translator = cut_small(Translator(reverse_run, beam_size=beam_size, alpha=0.6))
    pairs = [("1 2 3", "3 2 1"), ("4 5", "9 9 9 9"), ("", ""), ("foo 7", "7 bar")]
    result = export_and_compare(translator, ODD_LINES, pairs, tmp_path, nbest)
    assert result["translations"][0][0] == "4 1 3"
    blank = [result["translations"][i][0] for i in (1, 2, 3)]
    assert blank == [""] * 3 and [result["scores"][i][0] for i in (1, 2, 3)] == [0.0] * 3
    # Each cut line has one rank only: its pieces' best translations joined.
    assert result["translations"][7][0].count(" ") == 29


@pytest.mark.slow
def test_sentencepiece_model_export_translates_as_nmt_translate(tmp_path):
    from nmt.translation.translate import Translator
    run = train_reverse(tmp_path / "spm", letters=True,
                        vocab={"kind": "sentencepiece", "size": 24})
    translator = cut_small(Translator(run, beam_size=3, alpha=1.0, length_penalty="gnmt"))
    pairs = [("1 2 3", "d c b"), ("45", "j j"), ("", ""), ("1 2", "c 3 b")]
    result = export_and_compare(translator, ODD_LINES, pairs, tmp_path, nbest=2)
    assert set(result["translations"][0][0]) <= set("abcdefghij ⁇")
    # Without tensorflow-text: a one-line error naming the extra, nothing written.
    blocked = ("import sys; sys.modules['tensorflow_text'] = None\n"
               "from nmt.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", blocked, "export", "--model", str(run), "--out",
                           str(tmp_path / "no-text")], capture_output=True, text=True)
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "pip install 'nmt-rnn[export]'" in done.stderr and not (tmp_path / "no-text").exists()


@pytest.mark.slow
def test_export_of_a_model_trained_under_tf_distribute(mirrored_run, tmp_path):
    from nmt.translation.translate import Translator
    translator = Translator(mirrored_run, beam_size=2)
    export_and_compare(translator, ODD_LINES, [("1 2", "2 1")], tmp_path, nbest=2)


@pytest.mark.slow
def test_export_of_an_ensemble_and_of_averaged_weights(reverse_run, reverse_run_bfloat16,
                                                      kept_run, tmp_path):
    from nmt.translation.translate import Translator
    # Two models trained on the same corpus (so with one target vocabulary), in two precisions;
    # the first member's decode settings (float32) apply.
    ensemble = cut_small(Translator([reverse_run, reverse_run_bfloat16], beam_size=3))
    export_and_compare(ensemble, ODD_LINES, [("1 2 3", "3 2 1"), ("", "4")], tmp_path / "e",
                       nbest=2)
    averaged = kept_run / "average-best-2"
    from nmt.storage import manifest  # the average knows its files
    assert manifest.check(averaged, hashes=True) == 5  # model.json, vocab (2), best, record
    export_and_compare(Translator(averaged, beam_size=2), ODD_LINES, [("1 2", "2 1")],
                       tmp_path / "a", nbest=1)


@pytest.mark.slow
def test_bfloat16_export_translates_as_nmt_translate_in_bfloat16(reverse_run_bfloat16, tmp_path):
    """The folder's decode.precision (bfloat16) is the export's: its search gives the bfloat16
    translator's outputs; `score` runs on the same bfloat16 weights, so within bfloat16's
    tolerance of float32 forced scoring; the weights take half the bytes."""
    from tests.helpers import SCORE_TOLERANCE

    from nmt.translation.export import export
    from nmt.translation.translate import Translator
    translator = cut_small(Translator(reverse_run_bfloat16, beam_size=3))
    assert translator.decode.precision == "bfloat16"
    exported = export(translator, tmp_path / "bf16", nbest=2)
    assert exported.settings["decode"]["precision"] == "bfloat16"
    pairs = [("1 2 3", "3 2 1"), ("4 5 6 7", "7 6 5 4"), ("", "")]
    result = fresh_translate(exported.path, ODD_LINES, pairs, False, tmp_path)
    assert_as_translate(result, translator, ODD_LINES, nbest=2)
    hyps, _ = translator.score([s for s, _ in pairs], [t for _, t in pairs])  # float32
    tokens = np.array([len(t.split()) + 1 for _, t in pairs])
    gaps = np.abs(np.array(result["forced_log_prob"]) - [h.log_prob for h in hyps]) / tokens
    assert gaps.max() <= SCORE_TOLERANCE, gaps

    full = export(Translator(reverse_run_bfloat16, beam_size=3, precision="float32"),
                  tmp_path / "f32", nbest=2)

    def weight_bytes(exported):
        return sum(size for name, size in exported.files if name.startswith("variables/"))
    assert weight_bytes(exported) < 0.6 * weight_bytes(full)


@pytest.mark.slow
def test_cli_export_prints_signatures_and_files_and_checks_its_output(reverse_run, tmp_path):
    from tests.helpers import run_nmt
    out = tmp_path / "exported"
    code, stdout, stderr = run_nmt("export", "--model", reverse_run, "--out", out,
                                   "--beam-size", "4", "--alpha", "0.5", "--nbest", "2")
    assert code == 0, stderr
    assert "signature_def['serving_default']:" in stdout and "signature_def['score']:" in stdout
    assert "inputs['lines'] tensor_info:" in stdout and "shape: (-1, 2)" in stdout
    assert "saved_model.pb" in stdout and "assets/src.words.txt" in stdout
    settings = json.loads((out / "assets.extra" / "nmt.json").read_text())
    assert settings["decode"]["beam_size"] == 4 and settings["decode"]["alpha"] == 0.5
    assert settings["nbest"] == 2 and (out / "saved_model.pb").is_file()
    code, stdout_verify, stderr = run_nmt("verify", out)  # its manifest, every file hashed
    assert code == 0 and "files match manifest.json (sizes and sha256)" in stdout_verify, stderr
    assert "saved_model.pb" in json.loads((out / "manifest.json").read_text())["files"]
    # The signatures printed are those TensorFlow's own tool lists.
    listed = subprocess.run([Path(sys.executable).parent / "saved_model_cli", "show", "--dir", out,
                             "--all"], capture_output=True, text=True, timeout=300).stdout
    printed = stdout[:stdout.index("\nwritten to")]
    assert printed.startswith("MetaGraphDef with tag-set: 'serve'") and printed in listed

    # Output checked before any work; errors are one line.
    code, _, stderr = run_nmt("export", "--model", reverse_run, "--out", out)
    assert code == 1 and stderr.count("\n") == 1 and "exists and is not an empty folder" in stderr
    code, _, stderr = run_nmt("export", "--model", reverse_run, "--out", tmp_path / "other",
                              "--beam-size", "2", "--nbest", "3")
    assert code == 1 and stderr.count("\n") == 1 and "--nbest 3" in stderr
    assert not (tmp_path / "other").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    code, _, stderr = run_nmt("export", "--model", tmp_path / "nowhere", "--out", tmp_path / "x")
    assert code == 1 and stderr.startswith("nmt: error: ") and stderr.count("\n") == 1


# ---- real corpora (NMT_DATA): models trained quickly in the test, the full test sets ----------

def quick_recipe(tmp_path: Path, corpus: Path, splits: dict, vocab: dict, lines: int):
    return write_recipe(tmp_path / "recipe", {
        "data": {"corpus": str(corpus), **splits, "train_lines": lines},
        "vocab": vocab,
        "model": {"embedding_dim": 32, "encoder_units": 32, "encoder_layers": 1,
                  "decoder_units": 64, "attention_units": 32, "dropout": 0.0},
        "train": {"batch_size": 64, "epochs": 1, "learning_rate": 0.005, "seed": 1},
        "decode": {"beam_size": 5, "alpha": 1.0},
        "eval": {"tokenize": "none", "beam_sweep": [1], "tune_beams": []}})


def real_test_set(corpus: Path, name: str, src: str, tgt: str):
    from nmt.files import textio
    if not (corpus / f"{name}.{src}").is_file():
        pytest.skip(f"{corpus} not found: set NMT_DATA")
    sources = list(textio.read_lines(corpus / f"{name}.{src}", allow_blank=True, allow_tab=True))
    targets = list(textio.read_lines(corpus / f"{name}.{tgt}", allow_blank=True, allow_tab=True))
    return sources, targets


@pytest.mark.slow
@pytest.mark.parametrize("corpus, splits, vocab", [
    ("small_parallel_enja", {"src": "ja", "tgt": "en", "dev": "dev", "test": "test"},
     {"kind": "words", "size": 2000}),
    # multi30k's train.de has a TAB on line 7366, which training refuses: stay below it.
    ("multi30k-de-en", {"src": "de", "tgt": "en", "dev": "valid", "test": "test2016"},
     {"kind": "sentencepiece", "size": 1000}),
], ids=["enja-words", "multi30k-sentencepiece"])
def test_real_test_sets_through_the_export(tmp_path, corpus, splits, vocab):
    from nmt.config import recipes
    from nmt.training.train import train
    from nmt.translation.translate import Translator
    folder = recipes.data_root() / corpus
    sources, targets = real_test_set(folder, splits["test"], splits["src"], splits["tgt"])
    recipe = quick_recipe(tmp_path, folder, splits, vocab, lines=2000)
    train(recipe, tmp_path / "run", verbose=0)
    translator = Translator(tmp_path / "run")
    pairs = list(zip(sources, targets))
    result = export_and_compare(translator, sources, pairs, tmp_path, nbest=1)
    assert len(result["translations"]) == len(sources) >= 500
