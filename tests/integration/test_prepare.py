"""`nmt prepare` then `nmt train --set data.prepared=DIR`: the same training as one that prepares
its own data, without reading the training text again; a progress bar that knows the epoch."""
import pytest
from tests.helpers import metrics_rows, tiny_recipe_dict, write_recipe

from nmt import cli
from nmt.errors import ConfigError
from nmt.training.train import train


def test_a_prepared_folder_trains_as_the_run_s_own_preparation(tmp_path, reverse_corpus, capsys):
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(
        reverse_corpus, data={"train_lines": 500}, train={"epochs": 2}))
    assert cli.main(["prepare", str(recipe), "--out", str(tmp_path / "shared")]) == 0
    assert "data.prepared=" in capsys.readouterr().out
    own = train(recipe, tmp_path / "own", verbose=0)
    # The training text is not read again: only its size is compared with the record.
    (reverse_corpus / "train.src").rename(reverse_corpus / "moved.src")
    given = train(recipe, tmp_path / "given", [f"data.prepared={tmp_path / 'shared'}"],
                  verbose=1)
    assert (tmp_path / "own" / "prepared" / "manifest.json").is_file()
    assert not (tmp_path / "given" / "prepared").exists()
    assert own.epochs == given.epochs == 2
    for mine, theirs in zip(metrics_rows(tmp_path / "own"), metrics_rows(tmp_path / "given")):
        assert mine["val_nll"] == theirs["val_nll"] and mine["loss"] == theirs["loss"]
    log = (tmp_path / "given" / "train.log").read_text()
    assert f"prepared in {tmp_path / 'shared'}" in log and "first update" in log
    # The progress bar knows an epoch's batches: "N/N" with the exact count.
    bar = capsys.readouterr().out
    steps = bar.split("/")[1].split()[0]
    assert f"{steps}/{steps}" in bar and int(steps) > 1
    (reverse_corpus / "moved.src").rename(reverse_corpus / "train.src")
    with pytest.raises(ConfigError, match="data.max_len is 12"):
        train(recipe, tmp_path / "other", [f"data.prepared={tmp_path / 'shared'}",
                                           "data.max_len=12"], verbose=0)


def test_prepare_after_a_training_in_the_same_process_logs_to_the_stderr_of_now(
        tmp_path, reverse_corpus, capsys):
    """A training's progress handler holds the stderr of its time; a later `nmt prepare` in the
    same process (a program calling `cli.main` twice) replaces it rather than writing into a
    stream closed since."""
    import contextlib
    import io

    from nmt.errors import DataError
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(reverse_corpus))
    (reverse_corpus / "dev.src").rename(reverse_corpus / "moved.src")
    with contextlib.redirect_stderr(io.StringIO()) as earlier:
        with pytest.raises(DataError):  # after its progress lines were set up
            train(recipe, tmp_path / "run", verbose=0)
    earlier.close()
    (reverse_corpus / "moved.src").rename(reverse_corpus / "dev.src")
    assert cli.main(["prepare", str(recipe), "--out", str(tmp_path / "prepared")]) == 0
    err = capsys.readouterr().err
    assert "Logging error" not in err and "training the source words vocabulary" in err
