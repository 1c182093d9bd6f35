"""Crashes, corrupt model folders, bad input to every verb, long streams, and safe loading."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from tests.helpers import (DRIVER, KEEP, assert_consistent, assert_one_line_error, metrics_rows,
                           run_nmt, tiny_recipe_dict, write_recipe)

pytestmark = pytest.mark.slow  # kills, long streams, a subprocess with TensorFlow per case

EPOCHS = 3


@pytest.fixture(scope="module")
def fault_recipe(tmp_path_factory):
    from tests.helpers import make_reverse_corpus
    root = tmp_path_factory.mktemp("faults")
    corpus = make_reverse_corpus(root / "reverse", train=600)
    return write_recipe(root / "recipe", tiny_recipe_dict(
        corpus, train={"epochs": EPOCHS, "patience": 10, "lr_patience": 10, "keep_best": KEEP,
                       "keep_last": KEEP}))


@pytest.mark.parametrize("fault, epoch, committed", [
    ("mid_epoch", 0, 0), ("mid_epoch", 1, 1), ("validation", 1, 1), ("writing_weights", 1, 1),
    ("writing_state", 1, 1), ("publishing", 1, 2)])
def test_killed_training_resumes_to_the_same_number_of_epochs(fault, epoch, committed,
                                                               fault_recipe, tmp_path):
    run = tmp_path / "run"
    killed = subprocess.run([sys.executable, str(DRIVER), fault, str(epoch), str(fault_recipe),
                             str(run)], capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    if fault != "publishing":  # killed before best/last were replaced: both must still load
        assert_consistent(run)
    code, _, err = run_nmt("train", fault_recipe, "--run-dir", run)
    assert code == 0, err
    assert (f"resuming after epoch {committed}" in err) == (committed > 0)
    assert [int(row["epoch"]) for row in metrics_rows(run)] == list(range(EPOCHS))
    assert json.loads((run / "backup" / "state.json").read_text())["epoch"] == EPOCHS
    assert_consistent(run)
    assert not [p.name for p in run.rglob(".*.tmp*")]  # stale temporaries were cleared


@pytest.fixture
def model_copy(reverse_run, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(reverse_run, copy, ignore=shutil.ignore_patterns("backup", "tensorboard"))
    # As written before manifests: the loaders' own checks (test_output_faults.py has the
    # manifest's, which name these damages first).
    (copy / "manifest.json").unlink()
    return copy


@pytest.mark.parametrize("damage, fragments", [
    (lambda m: (m / "best.weights.h5").write_bytes((m / "best.weights.h5").read_bytes()[:5000]),
     ["best.weights.h5", "truncated, corrupt"]),
    (lambda m: (m / "best.weights.h5").write_bytes(b"not hdf5 at all"),
     ["best.weights.h5", "truncated, corrupt"]),
    (lambda m: (m / "model.json").write_text("{broken"), ["model.json", "unreadable"]),
    (lambda m: (m / "model.json").write_text(json.dumps(
        {**json.loads((m / "model.json").read_text()), "format_version": 99})),
     ["model.json", "format 99"]),
    (lambda m: shutil.rmtree(m / "vocab"), ["incomplete model folder"]),
    (lambda m: [(m / f"{w}.weights.h5").unlink() for w in ("best", "last")],
     ["no trained weights yet"]),
])
def test_damaged_model_folder_is_a_one_line_error(model_copy, damage, fragments):
    damage(model_copy)
    code, _, err = run_nmt("translate", "--model", model_copy, stdin="1 2\n")
    assert_one_line_error(code, err, *fragments)


@pytest.mark.parametrize("content, fragments", [
    (b"1 2\n3 \xff\n", ["in.txt:2:", "invalid UTF-8"]),
    (b"1 2\n3\x004\n", ["in.txt:2:", "NUL"]),
    (b"1 2\r\n", ["in.txt:1:", "CRLF"]),
])
def test_translate_bad_input_leaves_no_output(reverse_run, tmp_path, content, fragments):
    source = tmp_path / "in.txt"
    source.write_bytes(content)
    out = tmp_path / "out.txt"
    code, _, err = run_nmt("translate", "--model", reverse_run, "-i", source, "-o", out)
    assert_one_line_error(code, err, *fragments)
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_translate_blank_empty_and_very_long_lines(reverse_run, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    code, out, err = run_nmt("translate", "--model", reverse_run, "-i", empty)
    assert code == 0 and out == ""
    long_line = " ".join(["1", "2", "3"] * 3334)  # 10,002 tokens
    code, out, err = run_nmt("translate", "--model", reverse_run, "--beam-size", "1",
                             stdin=f"1 2\n\n{long_line}\n")
    assert code == 0, err
    lines = out.split("\n")
    # One output line per input line; the long one is decoded as 41 pieces of <= 250 tokens,
    # each of which the briefly trained model ends early, so only its presence is checked.
    assert lines[:2] == ["2 1", ""] and lines[2].strip() and lines[3:] == [""]
    assert "line 3 has 10002 tokens: translated in pieces of 250" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("files, fragments", [
    ({"ref": b"a\nb\n", "hyp": b"a\n"}, ["hyp", "1 lines, but the reference"]),
    ({"ref": b"", "hyp": b""}, ["ref", "empty file"]),
    ({"ref": b"a \xfe\n", "hyp": b"a\n"}, ["ref:1:", "invalid UTF-8"]),
])
def test_bleu_bad_input(tmp_path, files, fragments):
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    code, _, err = run_nmt("bleu", tmp_path / "ref", "-i", tmp_path / "hyp")
    assert_one_line_error(code, err, *fragments)


def test_evaluate_bad_input(reverse_run, tmp_path):
    (tmp_path / "src").write_text("1 2\n3 4\n")
    (tmp_path / "ref").write_text("2 1\n")
    code, _, err = run_nmt("evaluate", "--model", reverse_run, "--src", tmp_path / "src",
                           "--ref", tmp_path / "ref", "--out", tmp_path / "out")
    assert_one_line_error(code, err, "2 lines, but the reference")
    assert not (tmp_path / "out").exists()
    code, _, err = run_nmt("evaluate", "--model", tmp_path / "missing", "--src",
                           tmp_path / "src", "--ref", tmp_path / "ref")
    assert_one_line_error(code, err, "no such model folder")


def peak_rss_translating(model, lines: int) -> int:
    """Peak RSS (KiB) of `nmt translate` reading `lines` lines from stdin; checks the output."""
    code = ("import resource, subprocess, sys\n"
            "p = subprocess.Popen([sys.executable, '-m', 'nmt', 'translate', '--model',"
            " sys.argv[1],"
            " '--beam-size', '1'], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)\n"
            "import threading\n"
            "def feed():\n"
            "    for i in range(int(sys.argv[2])):\n"
            "        p.stdin.write(' '.join(str((i // 10 ** k) % 10) for k in range(4)) + '\\n')\n"
            "    p.stdin.close()\n"
            "threading.Thread(target=feed).start()\n"
            "wrong = total = 0\n"
            "for i, line in enumerate(p.stdout):\n"
            "    total += 1\n"
            "    expected = ' '.join(str((i // 10 ** k) % 10) for k in reversed(range(4)))\n"
            "    wrong += line.strip() != expected\n"
            "p.wait()\n"
            "print(total, wrong, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    out = subprocess.run([sys.executable, "-c", code, str(model), str(lines)],
                         capture_output=True, text=True, check=True, timeout=900).stdout
    total, wrong, rss = map(int, out.split())
    assert total == lines and wrong <= lines // 100, (total, wrong)  # input order is kept
    return rss


def test_translating_100k_lines_keeps_memory_flat(reverse_run):
    small, large = peak_rss_translating(reverse_run, 10_000), \
        peak_rss_translating(reverse_run, 100_000)
    print(f"peak RSS: 10k lines {small / 1024:.0f} MiB, 100k lines {large / 1024:.0f} MiB")
    assert large < small * 1.10 + 20 * 1024


def test_loading_runs_no_code_from_the_model_folder(model_copy, tmp_path, monkeypatch):
    import pickle

    from nmt.errors import ModelDirError
    from nmt.storage import modeldir
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle used"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle used"))
    modeldir.load_model(model_copy)
    marker = tmp_path / "pwned"
    recipe = model_copy / "recipe.yaml"
    recipe.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n" +
                      recipe.read_text())
    with pytest.raises(ModelDirError):
        modeldir.load_model(model_copy)
    assert not marker.exists() and not os.path.exists(marker)


def test_resume_restores_early_stopping_and_learning_rate_decay(tmp_path, reverse_corpus):
    """Dev BLEU is held at 0 (references the model never produces), so early stopping and the
    decay act on a fixed schedule; a killed and resumed run must follow it exactly."""
    (reverse_corpus / "dev.tgt").write_text("zzz\n" * 100)
    recipe = write_recipe(tmp_path / "r", tiny_recipe_dict(
        reverse_corpus, data={"train_lines": 300},
        train={"epochs": 10, "patience": 3, "lr_patience": 1, "lr_decay": 0.5}))
    code, _, err = run_nmt("train", recipe, "--run-dir", tmp_path / "straight")
    assert code == 0, err
    killed = subprocess.run([sys.executable, str(DRIVER), "mid_epoch", "2", str(recipe),
                             str(tmp_path / "resumed")], capture_output=True, text=True,
                            timeout=600)
    assert killed.returncode == -9, killed.stderr[-2000:]
    code, _, err = run_nmt("train", recipe, "--run-dir", tmp_path / "resumed")
    assert code == 0, err
    straight, resumed = metrics_rows(tmp_path / "straight"), metrics_rows(tmp_path / "resumed")
    assert len(straight) == 4  # best at epoch 0, then 3 epochs without improvement
    assert [r["epoch"] for r in resumed] == [r["epoch"] for r in straight]
    rates = [float(r["learning_rate"]) for r in straight]
    # The logged rate is the one the epoch trained with; each epoch without a gain halves the next.
    assert rates == pytest.approx([0.01, 0.01, 0.005, 0.0025])
    assert [float(r["learning_rate"]) for r in resumed] == pytest.approx(rates)
