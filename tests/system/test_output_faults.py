"""Issue 30: the newer commands (average, tune, export) check their destination before a model
loads, and report any write error, full disks included, as one line naming the path the user
gave; damaged weights are named when they load; tune keeps a default it cannot improve on."""
import contextlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from tests.helpers import (NMT, assert_one_line_error, files_of, read_only, run_nmt,
                           small_disk, tiny_recipe_dict, write_lines, write_recipe)


def copy_run(reverse_run: Path, to: Path, load_fails: bool = False) -> Path:
    """A copy of the session's run; with `load_fails`, one whose model cannot load (no
    vocabulary), so that an error naming the output shows it was checked first."""
    shutil.copytree(reverse_run, to, ignore=shutil.ignore_patterns("tensorboard"))
    if load_fails:
        shutil.rmtree(to / "vocab")
    return to


# ---- 1. nmt average -------------------------------------------------------------------------

@pytest.mark.slow  # three `nmt average` processes
def test_average_checks_its_output_before_the_model_loads(reverse_run, tmp_path):
    broken = copy_run(reverse_run, tmp_path / "broken", load_fails=True)
    (tmp_path / "ro").mkdir()
    run = copy_run(reverse_run, tmp_path / "ro" / "run", load_fails=True)
    with read_only(tmp_path / "ro") as ro:
        before = files_of(ro)
        code, _, err = run_nmt("average", broken, "--best", 1, "-o", ro / "avg")
        assert_one_line_error(code, err, f"{ro / 'avg'}: cannot write")
        code, _, err = run_nmt("average", run, "--best", 1)
        assert_one_line_error(code, err, f"{run / 'average-best-1'}: cannot write")
        assert files_of(ro) == before


@pytest.mark.slow
def test_average_on_a_full_disk_names_the_output(reverse_run, tmp_path):
    with small_disk(tmp_path / "disk") as disk:
        code, _, err = run_nmt("average", reverse_run, "--best", 1, "-o", disk / "avg")
        assert_one_line_error(code, err, f"nmt: error: {disk / 'avg'}: cannot write (No space")
        assert list(disk.iterdir()) == []


# ---- 2. nmt tune ----------------------------------------------------------------------------

@pytest.mark.slow  # three `nmt tune` processes
def test_tune_checks_its_outputs_before_the_model_loads(reverse_run, tmp_path):
    src = write_lines(tmp_path / "dev.src", ["1 2 3", "4 5"])
    broken = copy_run(reverse_run, tmp_path / "broken", load_fails=True)
    (tmp_path / "ro").mkdir()
    model = copy_run(reverse_run, tmp_path / "ro" / "run", load_fails=True)
    with read_only(tmp_path / "ro") as ro:
        before = files_of(ro)
        code, _, err = run_nmt("tune", "--model", broken, "--src", src, "--ref", src,
                               "--out", ro / "tune")
        assert_one_line_error(code, err, f"{ro / 'tune'}: cannot write")
        code, _, err = run_nmt("tune", "--model", model, "--src", src, "--ref", src)
        assert_one_line_error(code, err, f"{model / 'tune-dev.src'}: cannot write")
        code, _, err = run_nmt("tune", "--model", model, "--src", src, "--ref", src,
                               "--out", tmp_path / "tune", "--write")
        assert_one_line_error(code, err, f"{model / 'recipe.yaml'}: cannot write")
        assert files_of(ro) == before
    assert not (tmp_path / "tune").exists()


# ---- 4. damaged weights -----------------------------------------------------------------------

def put_nan(weights_file: Path) -> None:
    """A NaN written into the first float dataset of a weights file, its structure intact."""
    import h5py
    import numpy as np
    with h5py.File(weights_file, "r+") as handle:
        found = []
        handle.visititems(lambda name, item: found.append(item) if isinstance(
            item, h5py.Dataset) and item.dtype.kind == "f" and item.size else None)
        values = found[0][()]
        values.flat[0] = np.nan
        found[0][...] = values


@pytest.mark.slow  # two commands, each loading the model
def test_weights_with_nan_are_named_when_they_load(reverse_run, tmp_path):
    model = copy_run(reverse_run, tmp_path / "model")
    put_nan(model / "best.weights.h5")
    from nmt.storage import manifest, modeldir
    manifest.write(model, modeldir.MODEL_FILES)  # as a diverged run publishes: the manifest
    # agrees with the file (a damaged file's is the manifest's to name: see below)
    src = write_lines(tmp_path / "src", ["1 2 3"])
    code, _, err = run_nmt("score", "--model", model, "--src", src, "--tgt", src)
    assert_one_line_error(code, err, f"{model / 'best.weights.h5'}: damaged weights", "NaN")
    code, out, err = run_nmt("translate", "--model", model, "-i", src)
    assert_one_line_error(code, err, f"{model / 'best.weights.h5'}: damaged weights")
    assert out == ""


# ---- 3. nmt export ----------------------------------------------------------------------------

@pytest.mark.slow  # two `nmt export` processes, one tracing the search
def test_export_checks_its_output_first_and_names_it_on_a_full_disk(reverse_run, tmp_path):
    broken = copy_run(reverse_run, tmp_path / "broken", load_fails=True)
    (tmp_path / "ro").mkdir()
    with read_only(tmp_path / "ro") as ro:
        code, _, err = run_nmt("export", "--model", broken, "--out", ro / "exp")
        assert_one_line_error(code, err, f"{ro / 'exp'}: cannot write")
    with small_disk(tmp_path / "disk", "256k") as disk:
        code, _, err = run_nmt("export", "--model", reverse_run, "--out", disk / "exp")
        assert_one_line_error(code, err, f"nmt: error: {disk / 'exp'}: cannot write")
        assert list(disk.iterdir()) == []


@pytest.mark.parametrize("jobs", [1, 2])
def test_prepare_meeting_a_full_disk_says_so_and_leaves_nothing(jobs, tmp_path, capsys):
    from nmt import cli
    with small_disk(tmp_path / "disk", "1m") as disk:  # the vocabularies fit, the shards not
        code = cli.main(["prepare", str(Path(__file__).parents[2] / "recipes" / "ja-en-tiny"),
                         "--out", str(disk / "prepared"),
                         "--jobs", str(jobs)])
        # Its progress lines (timestamped), then the one-line error.
        err = capsys.readouterr().err
        *progress, error = err.splitlines()
        assert code == 1 and "Traceback" not in err, err
        assert error.startswith(f"nmt: error: {disk / 'prepared'}: cannot write (No space left")
        assert progress and all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", line)
                                for line in progress), err
        assert list(disk.iterdir()) == []


def big_corpus(folder: Path, pairs: int) -> Path:
    """The reverse task's 2,000 training pairs repeated to `pairs` (a corpus that takes seconds
    to prepare with two processes)."""
    from tests.helpers import make_reverse_corpus
    make_reverse_corpus(folder)
    for side in ("src", "tgt"):
        lines = (folder / f"train.{side}").read_text()
        (folder / f"train.{side}").write_text(lines * (pairs // 2000))
    return folder


@pytest.mark.slow  # three nmt prepare processes over 200,000 pairs
def test_prepare_stopped_or_killed_leaves_nothing_a_training_would_take(tmp_path):
    import signal
    import subprocess
    corpus = big_corpus(tmp_path / "corpus", 200_000)
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(corpus))
    out = tmp_path / "data" / "prepared"
    for stop in (signal.SIGTERM, signal.SIGKILL):
        process = subprocess.Popen([*NMT, "prepare", str(recipe), "--out", str(out), "--jobs",
                                    "2"], stderr=subprocess.PIPE, text=True)
        for line in process.stderr:
            if "preparing" in line:  # the vocabularies are made, the encoding starts
                break
        time.sleep(1)
        process.send_signal(stop)
        err = process.stderr.read()
        assert process.wait(timeout=60) == (143 if stop == signal.SIGTERM else -9), err
        assert not out.exists()
        if stop == signal.SIGTERM:
            # Not even the folder made to hold it.
            assert err.strip() == "nmt: terminated (SIGTERM)" and not out.parent.exists()
    # SIGKILL left its temporary folder; the next prepare removes it and finishes.
    assert len(os.listdir(out.parent)) == 1
    code, _, err = run_nmt("prepare", recipe, "--out", out, "--jobs", "2")
    assert code == 0, err
    assert sorted(os.listdir(out.parent)) == ["prepared"]
    assert json.loads((out / "prepared.json").read_text())["kept"] == 200_000


# ---- one rule for outputs: every writing command, an unwritable and a full destination --------

# Each writing command, DEST its destination; the model (or run) does not exist, so that an
# error naming DEST shows the destination was checked before any model loads or work starts.
WRITERS = {
    "train": ["train", "RECIPE", "--run-dir", "DEST"],
    "prepare": ["prepare", "RECIPE", "--out", "DEST"],
    "translate": ["translate", "--model", "NO-MODEL", "-i", "SRC", "-o", "DEST"],
    "translate --resume": ["translate", "--model", "NO-MODEL", "-i", "SRC", "-o", "DEST",
                           "--resume"],
    "evaluate": ["evaluate", "--model", "NO-MODEL", "--src", "SRC", "--ref", "SRC",
                 "--out", "DEST"],
    "score": ["score", "--model", "NO-MODEL", "--src", "SRC", "--tgt", "SRC", "-o", "DEST"],
    "tune": ["tune", "--model", "NO-MODEL", "--src", "SRC", "--ref", "SRC", "--out", "DEST"],
    "average": ["average", "NO-MODEL", "--best", "1", "-o", "DEST"],
    "export": ["export", "--model", "NO-MODEL", "--out", "DEST"],
    "embeddings --plot": ["embeddings", "--model", "NO-MODEL", "--plot", "DEST"],
    "plot": ["plot", "NO-MODEL", "-o", "DEST"],
}


def fill(disk: Path) -> None:
    """Writes into `disk` until not one more block fits."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


@pytest.mark.parametrize("destination", ["read-only", "full"])
@pytest.mark.parametrize("command", WRITERS)
def test_every_writing_command_checks_its_destination_first(command, destination, tiny_recipe,
                                                            tmp_path, capsys):
    from nmt import cli
    src = write_lines(tmp_path / "src.txt", ["1 2 3"])
    where = tmp_path / "dest"
    where.mkdir()
    with (read_only(where) if destination == "read-only" else small_disk(where, "64k")) as dest:
        if destination == "full":
            fill(dest)
        before = sorted(dest.iterdir())
        target = dest / "out"
        args = [{"RECIPE": str(tiny_recipe), "NO-MODEL": str(tmp_path / "no-model"),
                 "SRC": str(src), "DEST": str(target)}.get(a, a) for a in WRITERS[command]]
        code = cli.main(args)
        err = capsys.readouterr().err
        assert_one_line_error(code, err, f"nmt: error: {target}: cannot write (")
        assert ("No space left" if destination == "full" else "ead-only file system") in err \
            or (destination == "read-only" and "ermission denied" in err), err
        assert sorted(dest.iterdir()) == before


# ---- model folders that know they are whole -------------------------------------------------

def flip_byte(path: Path, keep_mtime: bool = False) -> None:
    """One byte in the middle of `path` changed, its size kept (bit rot); with `keep_mtime`,
    its modification time too (nothing but a hash can tell)."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    if keep_mtime:
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_damaged_or_missing_file_of_a_model_folder_is_named(reverse_run, tmp_path):
    from nmt.errors import ModelDirError
    from nmt.storage import manifest, modeldir
    assert manifest.check(reverse_run) == 5  # model.json, 2 vocabularies, best, last
    model = copy_run(reverse_run, tmp_path / "model")
    assert not (model / manifest.STAMP).exists() or manifest.check(model) == 5
    modeldir.load_model(model)  # the first load after the copy hashes, and notes it
    hashed = (model / manifest.STAMP).read_text()
    flip_byte(model / "best.weights.h5", keep_mtime=True)
    assert manifest.check(model) == 5  # cheap: sizes, and hashes of what looks changed only
    assert (model / manifest.STAMP).read_text() == hashed
    code, _, err = run_nmt("verify", model)  # hashes everything
    assert_one_line_error(code, err, f"{model / 'best.weights.h5'}: damaged: its sha256")
    flip_byte(model / "best.weights.h5")  # back, and now with a new mtime: hashed at load
    assert manifest.check(model) == 5
    flip_byte(model / "last.weights.h5")
    with pytest.raises(ModelDirError, match="last.weights.h5: damaged: its sha256"):
        modeldir.load_model(model, "last")
    with open(model / "best.weights.h5", "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(ModelDirError, match=r"best.weights.h5: damaged: 1000 bytes, but"):
        modeldir.load_model(model)
    for name in ("best.weights.h5", "last.weights.h5"):
        shutil.copy(reverse_run / name, model / name)
    (model / "vocab" / "tgt.words.txt").unlink()
    with pytest.raises(ModelDirError, match=r"vocab/tgt.words.txt: missing \(listed in"):
        modeldir.load_model(model)


def test_a_folder_without_a_manifest_loads_unchecked(reverse_run, tmp_path):
    from nmt.storage import manifest, modeldir
    model = copy_run(reverse_run, tmp_path / "old")
    (model / manifest.NAME).unlink()
    assert manifest.check(model, hashes=True) is None
    assert modeldir.load_model(model).model is not None
    (model / manifest.NAME).write_text("{not json")
    with pytest.raises(Exception, match="manifest.json: damaged manifest"):
        modeldir.load_model(model)


# ---- long translations that resume ----------------------------------------------------------

def wait_for_progress(record: Path, lines: int, process) -> None:
    """Until the resume record counts at least `lines` input lines done."""
    while process.poll() is None:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(record.read_text())["lines"] >= lines:
                return
        time.sleep(0.01)
    raise AssertionError(f"the translation ended first: {process.communicate()[1]}")


def test_an_interrupted_translation_resumes_byte_identical(reverse_run, tmp_path, capsys):
    """A full disk, then SIGKILL or SIGTERM at a random point: each rerun with --resume goes on
    after the last complete chunk, and the output is that of an uninterrupted run. (The runs
    that are not killed run in this process: the test's time is a model load, not a start.)"""
    import random
    import signal
    import subprocess

    from nmt import cli
    from nmt.translation.translate import Translator, translate_file
    seed = random.SystemRandom().randrange(1 << 30)  # keras seeds `random`
    rng = random.Random(seed)
    lines = [" ".join(rng.choice("0123456789") for _ in range(rng.randint(6, 9)))
             for _ in range(600)]
    src = tmp_path / "src.txt"
    src.write_text("\n".join(lines))  # the last line without a newline: still a line
    expected = tmp_path / "expected.txt"  # chunks of 16 x 4 lines, as below
    translate_file(Translator(reverse_run, batch_size=4, beam_size=1), str(src), str(expected))
    capsys.readouterr()
    (tmp_path / "disk").mkdir()
    with small_disk(tmp_path / "disk", "12k") as disk:  # 3 pages: the record, its temporary and
        out = disk / "out.txt"  # one of output, about 250 lines
        record = disk / ".out.txt.resume.json"
        args = ["translate", "--model", str(reverse_run), "-i", str(src), "--batch-size", "4",
                "--beam-size", "1", "--resume", "-o", str(out)]
        assert cli.main(args) == 1
        assert_one_line_error(1, capsys.readouterr().err,
                              f"nmt: error: {out}: cannot write (No space left")
        done = json.loads(record.read_text())["lines"]
        assert 0 < done <= 256 and done % 64 == 0, (seed, done)
        subprocess.run(["mount", "-o", "remount,size=1m", str(disk)], check=True)
        stop = rng.choice([signal.SIGKILL, signal.SIGTERM])
        running = subprocess.Popen([*NMT, *args], stderr=subprocess.PIPE, text=True)
        # At once when a random chunk is recorded: three or more are left (a chunk takes about
        # 0.1 to 0.3 s here), so the kill lands in the work, before or after writing begins.
        wait_for_progress(record, rng.randrange(done + 64, 600 - 192), running)
        running.send_signal(stop)
        _, err = running.communicate(timeout=60)
        assert running.returncode == (143 if stop == signal.SIGTERM else -9), (seed, err)
        assert out.read_bytes() != expected.read_bytes()
        assert cli.main(args) == 0
        assert "translated 600/600 lines" in capsys.readouterr().err, seed
        assert out.read_bytes() == expected.read_bytes(), seed
        assert sorted(p.name for p in disk.iterdir()) == ["out.txt"]


# ---- rough edges ----------------------------------------------------------------------------

def test_a_failed_download_leaves_no_folder_behind(tmp_path, monkeypatch, capsys):
    from nmt import cli
    monkeypatch.setenv("NMT_DATA", str(tmp_path / "data"))
    (tmp_path / "data").mkdir()
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(
        "fetched", data={"corpus": "fetched", "src": "src", "tgt": "tgt",
                         "download_url": (tmp_path / "nowhere").as_uri()}))
    assert cli.main(["train", str(recipe), "--run-dir", str(tmp_path / "runs" / "r")]) == 1
    assert_one_line_error(1, capsys.readouterr().err, "dev.src: missing, and downloading")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "recipe"]
    assert list((tmp_path / "data").iterdir()) == []


def test_rough_edges_of_score_and_export_messages(tmp_path, capsys):
    from nmt import cli
    src = write_lines(tmp_path / "src", ["1 2", "3"])
    tgt = write_lines(tmp_path / "tgt", ["2 1"])
    from nmt.translation.scoring import score_files  # lengths are checked before the model
    with pytest.raises(Exception, match=f"{tgt}: 1 lines, but the source {src} has 2"):
        score_files(None, str(src), str(tgt))
    assert cli.main(["export", "--model", "m", "--out", str(src)]) == 1
    assert_one_line_error(1, capsys.readouterr().err, f"{src}: is a file")


def test_a_finished_run_on_a_read_only_disk_has_finished(reverse_run, tmp_path, capsys):
    from nmt import cli
    (tmp_path / "ro").mkdir()
    run = copy_run(reverse_run, tmp_path / "ro" / "run")
    with read_only(tmp_path / "ro"):
        assert cli.main(["train", str(reverse_run.parent / "recipe"), "--run-dir",
                         str(run)]) == 0
    captured = capsys.readouterr()
    assert "already finished (5 epochs" in captured.err and "cannot write" not in captured.err


def test_resume_refuses_other_settings_and_what_cannot_be_continued(tmp_path, capsys):
    from nmt import cli
    from nmt.errors import OutputError
    from nmt.translation.resume import Progress
    src = write_lines(tmp_path / "src.txt", ["1 2"])
    for args in (["-i", str(src)], ["-i", str(src), "-o", "-"], ["-o", str(tmp_path / "o")],
                 ["-i", "/dev/stdin", "-o", str(tmp_path / "o")]):
        assert cli.main(["translate", "--model", "no-model", "--resume", *args]) == 1
        assert_one_line_error(1, capsys.readouterr().err, "nmt: error: --resume needs")
    out = tmp_path / "out.txt"
    settings = {"decode": {"beam_size": 5, "alpha": 1.0}, "input": {"sha256": "a"}}
    first = Progress(out, settings)
    assert first.start() == 0
    with open(out, "a") as handle:
        handle.write("one\ntwo\nthree, half a chunk")
    first.advance(64, len("one\ntwo\n"))
    assert Progress(out, settings).start() == 64 and out.read_text() == "one\ntwo\n"
    with pytest.raises(OutputError, match=f"{out}: an unfinished translation with other "
                                          r"settings \(decode.beam_size, input changed\)"):
        Progress(out, {**settings, "decode": {"beam_size": 4, "alpha": 1.0},
                       "input": {"sha256": "b"}}).start()
    assert out.read_text() == "one\ntwo\n"
