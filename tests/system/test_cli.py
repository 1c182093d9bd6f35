"""The command line as a user meets it: help, one-line errors, exit codes, nothing lost."""
import json
import subprocess
import sys

import pytest
from tests.helpers import assert_one_line_error, run_nmt, tiny_recipe_dict, write_recipe

from nmt import cli

VERBS = [["train"], ["translate"], ["bleu"], ["evaluate"], ["score"], ["average"], ["tune"],
         ["embeddings"], ["plot"], ["export"], ["bench"], ["bench", "train"],
         ["bench", "translate"], ["bench", "export"], ["bench", "matmul"], ["bench", "profile"]]


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([*verb, "--help"])
    assert done.value.code == 0 and "usage: nmt" in capsys.readouterr().out


def test_help_does_not_import_tensorflow():
    code = ("import sys; from nmt.cli import main\ntry: main(['--help'])\n"
            "except SystemExit: pass\nprint('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.strip().endswith("False")


def corrupt_corpus(folder, split_file, content: bytes):
    (folder / split_file).write_bytes(content)


@pytest.mark.parametrize("file, content, fragments", [
    ("train.tgt", b"1 2\n", ["train.src", "misaligned"]),
    ("train.src", b"1 2\n3 \xc3\x28\n", ["train.src:2:", "invalid UTF-8"]),
    ("train.src", b"1 2\r\n", ["train.src:1:", "CRLF"]),
    ("train.src", b"1\x002\n", ["train.src:1:", "NUL"]),
    ("train.src", b"", ["train.src", "empty file"]),
    ("dev.tgt", b"1\n", ["misaligned"]),
])
def test_train_bad_corpus_is_a_one_line_error_and_loses_nothing(tmp_path, reverse_corpus, file,
                                                                content, fragments):
    corrupt_corpus(reverse_corpus, file, content)
    recipe = write_recipe(tmp_path / "r", tiny_recipe_dict(reverse_corpus))
    run = tmp_path / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text((tmp_path / "r" / "recipe.yaml").read_text())
    before = sorted(p.name for p in run.iterdir())
    code, _, err = run_nmt("train", recipe, "--run-dir", run)
    assert_one_line_error(code, err, *fragments)
    assert sorted(p.name for p in run.iterdir()) == sorted(before + [".lock"])  # its lock file


def test_train_unknown_key_suggests_the_close_match(tmp_path, reverse_corpus):
    recipe = write_recipe(tmp_path / "r", tiny_recipe_dict(reverse_corpus))
    code, _, err = run_nmt("train", recipe, "--set", "train.batchsize=8")
    assert_one_line_error(code, err, "unknown key 'train.batchsize'", "did you mean 'batch_size'")
    text = recipe.read_text().replace("batch_size:", "batch_sise:")
    recipe.write_text(text)
    code, _, err = run_nmt("train", recipe)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "batch_sise" in row)
    assert_one_line_error(code, err, f"recipe.yaml:{line}:", "did you mean 'batch_size'")


def test_train_missing_data_file(tmp_path, reverse_corpus):
    (reverse_corpus / "dev.src").unlink()
    recipe = write_recipe(tmp_path / "r", tiny_recipe_dict(reverse_corpus))
    code, _, err = run_nmt("train", recipe)
    assert_one_line_error(code, err, "dev.src", "no such file")


def test_resuming_from_a_foreign_resume_state_is_a_one_line_error(tmp_path, reverse_run):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(reverse_run, run)
    state_file = run / "backup" / "state.json"
    state = json.loads(state_file.read_text())
    # The shape an earlier nmt wrote: one weights file, no resume/last/best names.
    old = {key: state[key] for key in ("epoch", "best", "callbacks")}
    state_file.write_text(json.dumps({**old, "weights": state["resume"]}))
    def files():  # but the lock file, which names the last process to train here
        return {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p.name != ".lock"}
    before = files()
    code, _, err = run_nmt("train", run / "recipe.yaml", "--run-dir", run)
    assert_one_line_error(code, err, "state.json", "best_weights, last, resume")
    assert files() == before


@pytest.mark.slow
def test_translate_missing_or_broken_model(tmp_path, reverse_run):
    code, _, err = run_nmt("translate", "--model", tmp_path / "nope", stdin="1 2\n")
    assert_one_line_error(code, err, "nope", "no such model folder")
    (tmp_path / "empty").mkdir()
    code, _, err = run_nmt("translate", "--model", tmp_path / "empty", stdin="1 2\n")
    assert_one_line_error(code, err, "not a model folder")


def test_unusable_options_fail_before_any_work(tmp_path, reverse_run):
    code, _, err = run_nmt("translate", "--model", reverse_run, "-o", tmp_path, stdin="1 2\n")
    assert_one_line_error(code, err, "is a folder")
    code, _, err = run_nmt("translate", "--model", reverse_run, "--nbest", "2", "--beam-size",
                           "2", "--alignments", stdin="1 2\n")
    assert_one_line_error(code, err, "--alignments needs one translation per line")
    (tmp_path / "src").write_text("1 2\n")
    code, _, err = run_nmt("evaluate", "--model", reverse_run, "--src", tmp_path / "src",
                           "--ref", tmp_path / "src", "--out", tmp_path / "src")
    assert_one_line_error(code, err, "is not a folder")
    for alpha in ("nan", "inf", "-1"):
        code, _, err = run_nmt("translate", "--model", reverse_run, "--alpha", alpha,
                               stdin="1 2\n")
        assert code == 2 and "argument --alpha: expected a finite number >= 0" in err, err
        assert "Traceback" not in err


@pytest.mark.slow
def test_pipeline_translate_then_bleu(tmp_path, reverse_run):
    corpus = reverse_run.parent / "reverse"
    hyp = tmp_path / "hyp.txt"
    code, out, err = run_nmt("translate", "--model", reverse_run, "-i", corpus / "test.src",
                             "-o", hyp, "--beam-size", "2")
    assert code == 0, err
    assert "translated 100/100 lines" in err
    code, out, err = run_nmt("bleu", corpus / "test.tgt", "-i", hyp, "--tokenize", "none")
    assert code == 0 and float(out.split()[2]) >= 90
    code, out, _ = run_nmt("translate", "--model", reverse_run, stdin="1 2 3\n\n4 5\n")
    assert code == 0 and out == "3 2 1\n\n5 4\n"
    code, out, err = run_nmt("translate", "--model", reverse_run, "--scores", "--alpha", "1",
                             "--length-penalty", "gnmt", stdin="1 2 3\n")
    assert code == 0, err
    score, text = out.rstrip("\n").split("\t")
    from nmt.translation.translate import Translator
    best = Translator(reverse_run).translate(["1 2 3"])[0][0]
    assert text == best.text == "3 2 1"
    # GNMT penalty for 3 tokens and EOS: (5 + 4) / 6.
    assert float(score) == pytest.approx(best.log_prob / 1.5, abs=1e-4)


@pytest.mark.slow
def test_evaluate_writes_a_report(tmp_path, reverse_run):
    corpus = reverse_run.parent / "reverse"
    out = tmp_path / "report"
    code, stdout, err = run_nmt("evaluate", "--model", reverse_run, "--src", corpus / "test.src",
                                "--ref", corpus / "test.tgt", "--beams", "1,2", "--out", out)
    assert code == 0, err
    assert "signature: nrefs:1" in stdout and "beam   2: BLEU" in stdout
    assert json.loads((out / "report.json").read_text())["beam_size"] == 3
