"""Training that starts from another model (train.init_from) or takes its vocabularies
(vocab.from_model): what is taken, what is checked first, and that the base is only read."""
import shutil

import numpy as np
import pytest
from tests.helpers import (files_of, make_reverse_corpus, metrics_rows, tiny_recipe_dict,
                           write_lines, write_recipe)

from nmt.config import recipes
from nmt.errors import NmtError
from nmt.storage import modeldir, rundir

pytestmark = pytest.mark.slow  # trains models

# The shape of the `reverse_run` fixture's model: a run started from it must repeat it.
REVERSE_MODEL = {"embedding_dim": 32, "encoder_units": 32, "decoder_units": 64,
                 "attention_units": 32}


def snapshot(folder):
    """Bytes, mode and modification time of every file: a base folder must keep all three."""
    return {path: (*found, path.stat().st_mtime_ns) for path, found in files_of(folder).items()}


def vocab_files(folder):
    return {path.name: found for path, found in files_of(folder / "vocab").items()}


def fine_tune_recipe(tmp_path, name="recipe", pairs=200, **sections):
    """A recipe on other digit strings than the base saw, at a low rate; the model keys repeat
    the base's."""
    corpus = make_reverse_corpus(tmp_path / f"{name}-corpus", train=pairs)
    sections = {"model": dict(REVERSE_MODEL), "train": {"learning_rate": 0.001}, **sections}
    return write_recipe(tmp_path / name, tiny_recipe_dict(corpus, **sections))


def embeddings(run):
    loaded = modeldir.load_model(run)
    return [np.array(loaded.model.embedding_layer(side).embeddings) for side in ("src", "tgt")]


def test_a_fine_tuned_run_starts_from_the_base_and_reruns_without_it(reverse_run, tmp_path,
                                                                       caplog):
    """Starts from the base's weights and vocabularies, only reading it; once an epoch is
    committed, a rerun goes on from the run's own files, even with the base gone."""
    from nmt.training.train import train
    base = shutil.copytree(reverse_run, tmp_path / "base")
    before = snapshot(base)
    recipe = fine_tune_recipe(tmp_path, model={**REVERSE_MODEL, "freeze_embeddings": True,
                                                "dropout": 0.1})  # dropout may differ
    targets = tmp_path / "recipe-corpus" / "train.tgt"
    lines = targets.read_text().splitlines()
    lines = [line + " x" if i % 2 else line for i, line in enumerate(lines)]  # x: unknown
    write_lines(targets, lines)
    share = 100 * (len(lines) // 2) / sum(len(line.split()) for line in lines)
    result = train(recipe, tmp_path / "run", overrides=[f"train.init_from={base}"], verbose=0)
    run = rundir.RunDir(tmp_path / "run")
    # One epoch on 200 pairs at a low rate: a fresh model would still be near 0 BLEU.
    assert result.epochs == 1 and result.best_bleu > 80
    assert snapshot(base) == before  # read, never written (nor touched)
    assert vocab_files(run.root) == vocab_files(base)
    assert recipes.load_recipe(run.recipe).train.init_from == str(base)  # recorded, absolute
    for ours, theirs in zip(embeddings(run.root), embeddings(base)):  # frozen: the base's
        np.testing.assert_array_equal(ours, theirs)
    log = run.log.read_text().splitlines()
    assert any(f"initialized from {base} (best.weights.h5); a fresh optimizer" in line
               for line in log)
    warning, = [line for line in log if "warning" in line]
    assert share > 5 and (f"nmt: warning: {targets}: {share:.1f} % of its tokens are unknown "
                          f"(<unk>) to the vocabulary of {base}") in warning

    # A rerun after a committed epoch (a resume, here of a finished run) reads its own files.
    shutil.rmtree(base)
    result = train(recipe, run.root, overrides=[f"train.init_from={base}"], verbose=0)
    assert result.epochs == 1 and len(metrics_rows(run.root)) == 1
    assert "this run has already finished (1 epochs" in caplog.text


def test_the_optimizer_state_of_the_base_run_can_be_kept(reverse_run, tmp_path):
    from nmt.training import initialization, setup
    recipe = initialization.with_absolute_paths(recipes.load_recipe(
        fine_tune_recipe(tmp_path, train={"init_from": str(reverse_run), "init_optimizer": "keep",
                                          "learning_rate": 0.0005})))
    recipe, base = initialization.prepared(recipe, rundir.RunDir(tmp_path / "run"), None)
    sizes = map(len, modeldir.load_tokenizers(modeldir.ModelDir(reverse_run)))
    trainer = setup.compiled_trainer(recipe, *sizes)
    initialization.initialize(trainer, base, recipe.train)
    assert int(trainer.optimizer.iterations.numpy()) > 0  # the base run's updates
    assert float(trainer.optimizer.learning_rate.numpy()) == pytest.approx(0.0005)
    # Accumulation is the training step's, not the optimizer's: the state fits another
    # train.accumulate as well.
    accumulating, base = initialization.prepared(initialization.with_absolute_paths(
        recipes.load_recipe(fine_tune_recipe(tmp_path, name="accumulating", train={
            "init_from": str(reverse_run), "init_optimizer": "keep", "accumulate": 2}))),
        rundir.RunDir(tmp_path / "run"), None)
    trainer = setup.compiled_trainer(accumulating, *map(len, modeldir.load_tokenizers(
        modeldir.ModelDir(reverse_run))))
    initialization.initialize(trainer, base, accumulating.train)
    assert int(trainer.optimizer.iterations.numpy()) > 0


def test_bad_bases_are_refused_in_one_line_before_any_work(reverse_run, tmp_path):
    from nmt.training import train as training
    recipe = fine_tune_recipe(tmp_path)
    damaged = shutil.copytree(reverse_run, tmp_path / "damaged", ignore=shutil.ignore_patterns(
        "backup", "*.weights.h5"))
    (damaged / "best.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n truncated")
    # What `nmt average` writes: a model folder without the run's backup/.
    averaged = shutil.copytree(reverse_run, tmp_path / "averaged",
                               ignore=shutil.ignore_patterns("backup"))
    busy = shutil.copytree(reverse_run, tmp_path / "busy")
    # A base that froze its embeddings: its Adam state has no moments for them.
    frozen = shutil.copytree(reverse_run, tmp_path / "frozen")
    (frozen / "recipe.yaml").write_text((frozen / "recipe.yaml").read_text().replace(
        "freeze_embeddings: false", "freeze_embeddings: true").replace(
        "init_from: ''", f"init_from: {reverse_run}"))
    cases = [
        ([f"train.init_from={tmp_path / 'missing'}"], "no such model folder"),
        ([f"train.init_from={tmp_path / 'recipe-corpus'}"], "not a model folder"),
        ([f"train.init_from={damaged}"], "best.weights.h5: damaged: 18 bytes, but manifest.json"),
        ([f"train.init_from={reverse_run}", "model.encoder_units=48"],
         "model.encoder_units is 48 here but 32 in the model of train.init_from"),
        ([f"train.init_from={averaged}", "train.init_optimizer=keep"],
         "train.init_optimizer: keep, but"),
        ([f"train.init_from={busy}"], "a run directory still being trained (nmt train, pid"),
        ([f"train.init_from={frozen}", "train.init_optimizer=keep"],
         "train.init_optimizer: keep, but the model of"),
        ([f"vocab.from_model={busy}"], "still being trained"),
    ]
    with rundir.locked(rundir.RunDir(busy)):
        for overrides, expected in cases:
            with pytest.raises(NmtError) as caught:
                training.train(recipe, tmp_path / "run", overrides=overrides, verbose=0)
            assert expected in str(caught.value) and "\n" not in str(caught.value)
            assert not (tmp_path / "run").exists()  # refused before anything was made


def test_vocabularies_from_another_model(reverse_run, tmp_path):
    """A model of another shape takes the base's vocabularies and their settings."""
    from nmt.training.train import train
    recipe = fine_tune_recipe(tmp_path, data={"train_lines": 32},
                              vocab={"kind": "words", "size": 7, "from_model": str(reverse_run)},
                              model={"embedding_dim": 8, "encoder_units": 8, "decoder_units": 8,
                                     "attention_units": 8})
    train(recipe, tmp_path / "run", verbose=0)
    run = rundir.RunDir(tmp_path / "run")
    assert vocab_files(run.root) == vocab_files(reverse_run)
    assert recipes.load_recipe(run.recipe).vocab.size == 100  # the base's settings, recorded
    assert "(vocabularies of " in run.log.read_text()
    # What the shared vocabularies are for: the two models translate as one ensemble.
    from nmt.translation.translate import Translator
    assert len(Translator([reverse_run, run.root]).translate(["1 2 3", ""])) == 2
