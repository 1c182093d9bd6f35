"""Issue 30: the newer commands (average, tune, export) check their destination before a model
loads, and report any write error, full disks included, as one line naming the path the user
gave; damaged weights are named when they load; tune keeps a default it cannot improve on."""
import shutil
from pathlib import Path

import pytest
from tests.helpers import (assert_one_line_error, files_of, read_only, run_nmt, small_disk,
                           write_lines)


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
