"""What a new user broke (issue 16) and corpora as published (issue 14): each case through the
command line, checking the exit status, the one line on stderr, and that nothing was lost."""
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from tests.helpers import (DRIVER, NMT, assert_consistent, assert_one_line_error, files_of,
                           make_reverse_corpus, metrics_rows, read_only, run_nmt,
                           tiny_recipe_dict, write_recipe)


# ---- 1. a pipe named by -i is read once ------------------------------------------------------

@pytest.mark.slow  # two `nmt translate` processes, each starting TensorFlow
def test_input_named_as_a_pipe_is_read_once(reverse_run, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("1 2 3\n4 5\n6 7 8 9\n")
    for command in (f"cat {source} | {{nmt}} -i /dev/stdin", f"{{nmt}} -i <(cat {source})"):
        nmt = f"{sys.executable} -m nmt translate --model {reverse_run}"
        done = subprocess.run(["bash", "-c", command.format(nmt=nmt)], capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout == "3 2 1\n5 4\n9 8 7 6\n", command
        assert "translated 3 lines" in done.stderr


# ---- 2. -o writes into devices, FIFOs and symlink targets; modes are kept ------------------

def test_output_writes_into_what_it_names(reverse_run, tmp_path):
    def translate_to(out):
        code, _, err = run_nmt("translate", "--model", reverse_run, "-o", out, stdin="1 2\n")
        assert code == 0, err

    to_null = tmp_path / "null"
    to_null.symlink_to("/dev/null")
    translate_to(to_null)
    assert to_null.is_symlink() and os.readlink(to_null) == "/dev/null"

    target = tmp_path / "target.txt"
    target.write_text("old\n")
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    translate_to(link)
    assert link.is_symlink() and target.read_text() == "2 1\n"

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    translate_to(fifo)
    reader.join(timeout=60)
    assert received == ["2 1\n"] and stat.S_ISFIFO(fifo.stat().st_mode)

    private = tmp_path / "private.txt"
    private.write_text("old\n")
    private.chmod(0o600)
    translate_to(private)
    assert private.read_text() == "2 1\n" and stat.S_IMODE(private.stat().st_mode) == 0o600

    if os.geteuid() == 0:  # a device node of our own (making one needs root)
        device = tmp_path / "null-device"
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        translate_to(device)
        assert stat.S_ISCHR(device.stat().st_mode)
    assert not list(tmp_path.glob(".*.tmp"))


# ---- 3. one training per run directory -------------------------------------------------------

@pytest.mark.slow
def test_a_run_directory_is_locked_while_training(tiny_recipe, tmp_path):
    run = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom nmt.storage import rundir\n"
         "with rundir.locked(rundir.RunDir(sys.argv[1])):\n"
         "    print('held', flush=True)\n    time.sleep(600)\n", str(run)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        started = time.monotonic()
        code, _, err = run_nmt("train", tiny_recipe, "--run-dir", run)
        assert_one_line_error(code, err, str(run), f"pid {holder.pid}", "in use")
        assert time.monotonic() - started < 30  # at once, not after loading TensorFlow
        assert sorted(p.name for p in run.iterdir()) == [".lock"]
    finally:
        holder.kill()  # SIGKILL: the OS releases the lock
        holder.wait()
    from nmt.storage import rundir
    with rundir.locked(rundir.RunDir(run)):
        assert (run / ".lock").read_text().strip() == str(os.getpid())


# ---- 4. data.train_lines does not hide misaligned corpora ------------------------------------

def test_train_lines_does_not_hide_misaligned_files(reverse_corpus, tmp_path):
    lines = (reverse_corpus / "train.src").read_text().splitlines(keepends=True)
    (reverse_corpus / "train.src").write_text("".join(lines[:499] + ["1 2\n"] + lines[499:]))
    recipe = write_recipe(tmp_path / "r", tiny_recipe_dict(reverse_corpus,
                                                           data={"train_lines": 200}))
    code, _, err = run_nmt("train", recipe, "--run-dir", tmp_path / "run")
    assert_one_line_error(code, err, "train.tgt:2000:", "misaligned", "train.src goes on")
    assert not (tmp_path / "run" / "vocab").exists()


# ---- 5. everything written gets the umask's permissions --------------------------------------

def test_model_folder_is_readable_by_others_under_the_umask(reverse_run):
    umask = os.umask(0)
    os.umask(umask)
    for path in [reverse_run, *reverse_run.rglob("*")]:
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(path.stat().st_mode) & expected == expected, path
    assert stat.S_IMODE((reverse_run / "vocab").stat().st_mode) == 0o777 & ~umask


# ---- 6. unwritable outputs and missing inputs fail before a model is loaded ------------------

def test_unwritable_outputs_fail_before_any_work(reverse_run, tiny_recipe, tmp_path):
    src = tmp_path / "src.txt"
    src.write_text("1 2\n")
    missing_model = tmp_path / "no-model"  # would be the error if the model loaded first
    model = tmp_path / "ro" / "model"
    shutil.copytree(reverse_run, model, ignore=shutil.ignore_patterns("backup", "tensorboard"))
    with read_only(tmp_path / "ro") as ro:
        before = files_of(ro)
        code, _, err = run_nmt("translate", "--model", missing_model, "-i", src,
                               "-o", ro / "out.txt")
        assert_one_line_error(code, err, f"{ro / 'out.txt'}: cannot write")
        code, _, err = run_nmt("evaluate", "--model", missing_model, "--src", src, "--ref", src,
                               "--out", ro / "report")
        assert_one_line_error(code, err, f"{ro / 'report'}: cannot write")
        code, _, err = run_nmt("evaluate", "--model", model, "--src", src, "--ref", src)
        assert_one_line_error(code, err, f"{model / 'report-src.txt'}: cannot write")
        code, _, err = run_nmt("train", tiny_recipe, "--run-dir", ro / "run")
        assert_one_line_error(code, err, str(ro / "run"), "cannot write")
        code, _, err = run_nmt("train", tiny_recipe, "--run-dir", model)
        assert_one_line_error(code, err, str(model), "cannot write")
        assert files_of(ro) == before
    code, _, err = run_nmt("translate", "--model", missing_model, "-i", tmp_path / "nope.txt")
    assert_one_line_error(code, err, "nope.txt: no such file")
    code, _, err = run_nmt("evaluate", "--model", missing_model, "--src", tmp_path / "nope.txt",
                           "--ref", src)
    assert_one_line_error(code, err, "nope.txt: no such file")


# ---- 7. a full disk during training -----------------------------------------------------------

@pytest.mark.slow
def test_full_disk_during_training_is_one_line_and_the_run_resumes(tmp_path):
    corpus = make_reverse_corpus(tmp_path / "reverse", train=300)
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(corpus, train={"epochs": 3}))
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, str(DRIVER), "disk_full", "1", str(recipe), str(run)],
                          capture_output=True, text=True, timeout=600)
    err = done.stderr.splitlines()
    assert done.returncode == 1, done.stderr[-3000:]
    assert err[-1].startswith(f"nmt: error: {run / 'backup' / 'resume-0002.weights.h5'}: "
                              "cannot write (No space left on device")
    assert "Traceback" not in done.stderr
    assert_consistent(run)
    assert json.loads((run / "backup" / "state.json").read_text())["epoch"] == 1
    code, _, err = run_nmt("train", recipe, "--run-dir", run)
    assert code == 0 and "resuming after epoch 1" in err, err
    assert [int(row["epoch"]) for row in metrics_rows(run)] == [0, 1, 2]


@pytest.mark.slow
def test_hdf5_meeting_a_full_disk_does_not_crash(tmp_path):
    """A real full disk (a 300 KiB tmpfs), met by HDF5 itself: without care it prints a
    traceback per object and crashes at exit (status 139). Mounting needs root."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root; the disk_full driver test covers users")
    corpus = make_reverse_corpus(tmp_path / "reverse", train=300)
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(corpus))
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(disk)], check=True)
    try:
        done = subprocess.run([sys.executable, str(DRIVER), "hdf5_disk_full", "0", str(recipe),
                               str(disk / "run")], capture_output=True, text=True, timeout=600)
        assert done.returncode == 1, done.stderr[-3000:]
        assert done.stderr.splitlines()[-1].startswith(
            f"nmt: error: {disk / 'run' / 'backup' / 'resume-0001.weights.h5'}: cannot write "
            "(No space left on device)")
        assert "Traceback" not in done.stderr
        assert not list((disk / "run").rglob(".*.tmp*"))
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# ---- 8. evaluate with nothing to score ---------------------------------------------------------

def test_evaluate_with_no_scorable_line(reverse_run, tmp_path):
    (tmp_path / "src").write_text("\n \n")
    (tmp_path / "ref").write_text("1\n2\n")
    code, _, err = run_nmt("evaluate", "--model", reverse_run, "--src", tmp_path / "src",
                           "--ref", tmp_path / "ref", "--out", tmp_path / "out")
    assert_one_line_error(code, err, "src: no line can be scored", "blank")
    assert not (tmp_path / "out").exists()


# ---- 9. SIGTERM, and temporaries a killed process left -----------------------------------------

@pytest.mark.slow
def test_sigterm_during_translate_removes_the_temporary(reverse_run, tmp_path):
    out = tmp_path / "out.txt"
    out.write_text("old\n")
    translate = subprocess.Popen([*NMT, "translate", "--model", reverse_run, "-o", out],
                                 stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    translate.stdin.write("1 2\n")
    translate.stdin.flush()  # the input stays open: translate is writing its temporary
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.txt.*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(tmp_path.glob(".out.txt.*.tmp"))
    translate.send_signal(signal.SIGTERM)
    err = translate.communicate(timeout=60)[1]
    assert translate.returncode == 143, err
    assert err == "nmt: terminated (SIGTERM)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]
    assert out.read_text() == "old\n"


@pytest.mark.slow
def test_sigterm_while_the_first_epoch_fills_its_shuffle_buffer(tmp_path):
    """The main thread waits in TensorFlow while a reader thread fills the shuffle buffer: the
    reader stops at the signal, and the short epoch is neither scored nor saved."""
    import fcntl
    corpus = make_reverse_corpus(tmp_path / "reverse", train=60_000)
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(
        corpus, train={"epochs": 2, "shuffle_buffer": 100_000}))
    run = tmp_path / "run"
    train = subprocess.Popen([*NMT, "train", recipe, "--run-dir", run], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    for line in train.stderr:  # the model is built: fit and the buffer fill come next
        if " model: " in line:
            break
    time.sleep(1)
    train.send_signal(signal.SIGTERM)
    out, err = train.communicate(timeout=120)
    assert train.returncode == 143, err
    assert err.strip().splitlines()[-1] == "nmt: terminated (SIGTERM)"
    assert "Traceback" not in err
    assert not (run / "best.weights.h5").exists() and metrics_rows(run) == []
    with open(run / ".lock") as lock:  # released: the next `nmt train` on the run may start
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)


@pytest.mark.slow
def test_sigterm_while_the_last_epoch_is_saved_keeps_it_and_the_rerun_tunes(tmp_path):
    """The epoch's score is logged, its plot, metrics row and checkpoint come next: a SIGTERM
    then ends training once the epoch is committed, rather than throwing the epoch away; the
    steps after training, skipped by the stop, are done by the next `nmt train`."""
    from nmt.translation import tuning
    corpus = make_reverse_corpus(tmp_path / "reverse", train=60_000)
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(
        corpus, train={"epochs": 1}, eval={"tokenize": "none", "tune_beams": [1, 2]}))
    run = tmp_path / "run"
    train = subprocess.Popen([*NMT, "train", recipe, "--run-dir", run], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    for line in train.stderr:
        if " epoch 1: " in line:
            break
    train.send_signal(signal.SIGTERM)
    out, err = train.communicate(timeout=120)
    assert train.returncode == 143, err
    assert err.strip().splitlines()[-1] == "nmt: terminated (SIGTERM)"
    assert "Traceback" not in err
    assert [row["epoch"] for row in metrics_rows(run)] == ["0"]  # Keras counts from 0
    assert json.loads((run / "backup" / "state.json").read_text())["epoch"] == 1
    assert (run / "best.weights.h5").exists() and not (run / tuning.RECORD).exists()
    code, _, err = run_nmt("train", recipe, "--run-dir", run)
    assert code == 0, err
    assert "already finished" in err and (run / tuning.RECORD).is_file()


def test_stale_temporaries_are_removed_on_the_next_write(reverse_run, tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = tmp_path / f".out.txt.{gone.pid}-abcdefgh.tmp"
    alive = tmp_path / f".out.txt.{os.getpid()}-abcdefgh.tmp"  # a writer still at work
    other = tmp_path / f".other.txt.{gone.pid}-abcdefgh.tmp"
    for path in (stale, alive, other):
        path.write_text("partial")
    code, _, err = run_nmt("translate", "--model", reverse_run, "-o", tmp_path / "out.txt",
                           stdin="1 2\n")
    assert code == 0, err
    assert not stale.exists() and alive.exists() and other.exists()


# ---- 10. --run-dir naming a file --------------------------------------------------------------

def test_run_dir_naming_a_file(tiny_recipe, tmp_path):
    (tmp_path / "file").write_text("mine\n")
    code, _, err = run_nmt("train", tiny_recipe, "--run-dir", tmp_path / "file")
    assert_one_line_error(code, err, f"{tmp_path / 'file'}: is a file")
    assert (tmp_path / "file").read_text() == "mine\n"


# ---- 11. interactive input --------------------------------------------------------------------

def test_a_line_is_translated_while_the_input_stays_open(reverse_run):
    translate = subprocess.Popen([*NMT, "translate", "--model", reverse_run],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, bufsize=1)
    try:
        for line, expected in (("1 2 3\n", "3 2 1\n"), ("4 5\n", "5 4\n")):
            translate.stdin.write(line)
            translate.stdin.flush()
            ready = select.select([translate.stdout], [], [], 120)[0]
            assert ready, "no translation while the input is open"
            assert translate.stdout.readline() == expected
        translate.stdin.close()
        assert translate.wait(timeout=60) == 0
    finally:
        translate.kill()


# ---- 12. a byte-order mark ----------------------------------------------------------------------

@pytest.mark.slow  # translate, bleu and evaluate, each a full command
def test_byte_order_mark_is_not_part_of_the_first_word(reverse_run, tmp_path):
    bom = "\ufeff"
    code, out, err = run_nmt("translate", "--model", reverse_run, stdin=bom + "1 2 3\n")
    assert code == 0 and out == "3 2 1\n", err
    (tmp_path / "ref").write_text(bom + "5 4 3 2 1\n", encoding="utf-8")
    (tmp_path / "hyp").write_text("5 4 3 2 1\n")
    code, out, err = run_nmt("bleu", tmp_path / "ref", "-i", tmp_path / "hyp", "--tokenize",
                             "none")
    assert code == 0 and out.startswith("BLEU = 100.00"), out + err
    (tmp_path / "src").write_text(bom + "1 2 3 4 5\n", encoding="utf-8")
    code, _, err = run_nmt("evaluate", "--model", reverse_run, "--src", tmp_path / "src", "--ref",
                           tmp_path / "ref", "--beams", "1", "--out", tmp_path / "report")
    assert code == 0, err
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["sentences"][0]["source"] == "1 2 3 4 5"
    assert report["sentences"][0]["reference"] == "5 4 3 2 1"


# ---- 13. smaller things -----------------------------------------------------------------------

def test_broken_recipe_in_a_model_folder_is_named(reverse_run, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(reverse_run, model, ignore=shutil.ignore_patterns("backup", "tensorboard"))
    (model / "recipe.yaml").write_text("data: [unclosed\n")
    code, _, err = run_nmt("translate", "--model", model, stdin="1 2\n")
    assert_one_line_error(code, err, f"{model / 'recipe.yaml'}:", "invalid YAML")
    assert "model.json" not in err


def test_unknown_section_in_set_blames_the_option(tiny_recipe):
    code, _, err = run_nmt("train", tiny_recipe, "--set", "trian.epochs=2")
    assert_one_line_error(code, err, "--set: unknown section 'trian'", "did you mean 'train'")
    assert "recipe.yaml" not in err


def test_nbest_gives_k_entries_for_a_blank_line(reverse_run):
    code, out, err = run_nmt("translate", "--model", reverse_run, "--nbest", "3", stdin="1 2\n\n")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 6 and all(line.startswith("0 ||| ") for line in lines[:3])
    assert lines[3:] == ["1 |||  ||| 0.0000"] * 3


def test_evaluate_into_a_folder_replaces_only_its_own_report(reverse_run, tmp_path):
    corpus = reverse_run.parent / "reverse"
    out = tmp_path / "report"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    args = ["evaluate", "--model", reverse_run, "--src", corpus / "test.src", "--ref",
            corpus / "test.tgt", "--beams", "1", "--heatmaps", "1", "--out", out]
    code, _, err = run_nmt(*args)
    assert_one_line_error(code, err, f"{out}: holds files that are not a report", "notes.txt")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    (out / "notes.txt").unlink()
    (out / "figures").mkdir()
    (out / "figures" / "attention-line9999.png").write_bytes(b"an earlier report's")
    (out / "report.md").write_text("an earlier report")
    code, _, err = run_nmt(*args)
    assert code == 0, err
    assert not (out / "figures" / "attention-line9999.png").exists()
    assert "an earlier report" not in (out / "report.md").read_text()
    report = json.loads((out / "report.json").read_text())
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        ["beam_sweep.png"] + [Path(h["figure"]).name for h in report["heatmaps"]])


# ---- issue 14: corpora as published -------------------------------------------------------------

@pytest.mark.slow
def test_training_takes_corpora_as_published(reverse_corpus, tmp_path):
    src = (reverse_corpus / "train.src").read_text().splitlines()
    tgt = (reverse_corpus / "train.tgt").read_text().splitlines()
    src[0] = "\ufeff" + src[0]
    src[3] = src[3].replace(" ", "\t", 1)  # a TAB inside a sentence
    src[7] = tgt[7] = ""  # a blank pair
    tgt[9] = "   "
    src[11] = " ".join(["1"] * 40)  # over max_line_tokens (30)
    src[12] = " ".join(["2"] * 25)  # over max_len (20), under max_line_tokens
    (reverse_corpus / "train.src").write_text("\n".join(src) + "\n", encoding="utf-8")
    (reverse_corpus / "train.tgt").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    recipe = write_recipe(tmp_path / "r", tiny_recipe_dict(
        reverse_corpus, data={"max_line_tokens": 30, "train_lines": 300}))
    code, _, err = run_nmt("train", recipe, "--run-dir", tmp_path / "run")
    assert code == 0, err
    summary = next(line for line in err.splitlines() if "training data:" in line)
    assert "300 lines read" in summary and "296 pairs kept" in summary
    assert "1 with TABs or other whitespace, read as spaces (line 4)" in summary
    assert "2 blank on one side or both (lines 8, 10)" in summary
    assert "1 over data.max_line_tokens (30 tokens) on one side (line 12)" in summary
    assert "1 over data.max_len (20 tokens after tokenization) (line 13)" in summary
    words = (tmp_path / "run" / "vocab" / "src.words.txt").read_text(encoding="utf-8")
    assert "\ufeff" not in words and "\t" not in words


# ---- issue 28: a model to start from ------------------------------------------------------------

def test_init_from_a_folder_that_is_no_model_is_one_line(tiny_recipe, tmp_path):
    """--init-from is train.init_from: checked before the run directory is made."""
    code, _, err = run_nmt("train", tiny_recipe, "--run-dir", tmp_path / "run", "--init-from",
                           tmp_path)
    assert_one_line_error(code, err, f"nmt: error: {tmp_path}: not a model folder")
    assert not (tmp_path / "run").exists()
