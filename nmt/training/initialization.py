"""Starting a run from another model: `train.init_from` (its vocabularies and weights: fine-tuning,
domain adaptation) and `vocab.from_model` (its vocabularies only, so that models can be
ensembled).

The base folder is checked before any work and only ever read: its lock is tested, never taken,
and its files are opened for reading. The run directory records the base (as an absolute path,
in its recipe); a resumed run goes on from its own committed epoch and does not read the base.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import NamedTuple

from nmt.config import options, recipes
from nmt.errors import ConfigError, ModelDirError
from nmt.storage import modeldir, rundir
from nmt.system import runtime

log = logging.getLogger("nmt")

# Vocabulary keys about how this run uses the vocabulary, not what it is: they stay the run's.
_OWN_VOCAB_KEYS = ("from_model", "sampling_alpha")


class Base(NamedTuple):
    """A checked base folder."""
    root: Path
    recipe: options.Recipe
    weights: Path | None  # train.init_from: the weights file to start from; None: vocab only
    state: dict | None    # train.init_optimizer keep: the base run's committed state


def source(recipe: options.Recipe) -> str:
    """The folder the run takes its vocabularies from ('' = built from its training data)."""
    return recipe.train.init_from or recipe.vocab.from_model


def with_absolute_paths(recipe: options.Recipe) -> options.Recipe:
    """The base folders (and the prepared data's) made absolute: the run records them so, and a
    resume from another working directory names the same folders."""
    values = recipes.to_dict(recipe)
    for section, key in (("train", "init_from"), ("vocab", "from_model"), ("data", "prepared")):
        if values[section][key]:
            values[section][key] = options.absolute_folder(values[section][key])
    return recipes.recipe_from_dict(values)


def prepared(recipe: options.Recipe, run: rundir.RunDir,
             threads: int | None) -> tuple[options.Recipe, Base | None]:
    """The recipe with the vocabulary settings of the folder it takes its vocabularies from, and
    that folder checked (None for a run resumed after a committed epoch, or without a base)."""
    if not source(recipe):
        return recipe, None
    if rundir.read_resume_state(run) is not None:  # its own recipe.yaml holds the settings
        return _with_vocabulary_of(recipe, modeldir.read_recipe(run)), None
    base = checked_base(recipe, run, threads)
    return _with_vocabulary_of(recipe, base.recipe), base


def borrowed_vocabularies(recipe: options.Recipe):
    """(the recipe with the vocabulary settings of the folder it takes its vocabularies from,
    that folder's (source, target) tokenizers), or (the recipe, None) when it takes none."""
    if not source(recipe):
        return recipe, None
    folder = modeldir.ModelDir(source(recipe))
    modeldir.read_description(folder.root)
    return (_with_vocabulary_of(recipe, modeldir.read_recipe(folder)),
            modeldir.load_tokenizers(folder))


def _with_vocabulary_of(recipe: options.Recipe, base: options.Recipe) -> options.Recipe:
    values = recipes.to_dict(recipe)
    own = {key: values["vocab"][key] for key in _OWN_VOCAB_KEYS}
    values["vocab"] = {**recipes.to_dict(base)["vocab"], **own}
    return recipes.recipe_from_dict(values, "the vocabulary settings of " + source(recipe))


def checked_base(recipe: options.Recipe, run: rundir.RunDir, threads: int | None) -> Base:
    """One line if the base folder is missing, not a model folder, still being trained, this
    run's own folder, damaged, shaped differently (the first model key that differs), or has no
    optimizer state to keep; with init_from its weights are loaded once, to check them."""
    root = Path(source(recipe))
    name = "train.init_from" if recipe.train.init_from else "vocab.from_model"
    if root.is_dir() and run.root.is_dir() and root.samefile(run.root):
        raise ConfigError(f"{name} names this run's own directory, which training writes; "
                          f"choose another --run-dir", str(root))
    pid = rundir.holder(root)
    if pid is not None:
        raise ModelDirError(f"a run directory still being trained (nmt train, pid {pid}); "
                            f"start from it once that has ended", str(root))
    modeldir.read_description(root)
    folder = modeldir.ModelDir(root)
    base_recipe = modeldir.read_recipe(folder)
    if not recipe.train.init_from:
        modeldir.load_tokenizers(folder)
        return Base(root, base_recipe, None, None)
    ours, theirs = options.weight_shaping(recipe.model), options.weight_shaping(base_recipe.model)
    for key in ours:
        if ours[key] != theirs[key]:
            raise ConfigError(f"model.{key} is {ours[key]!r} here but {theirs[key]!r} in the "
                              f"model of train.init_from ({root}): the model keys that shape "
                              f"the weights must match")
    state = None
    if recipe.train.init_optimizer == "keep" and base_recipe.model.freeze_embeddings:
        # Its Adam state has no moments for the embeddings, and Keras would skip it silently.
        raise ConfigError(f"train.init_optimizer: keep, but the model of {root} was trained "
                          f"with model.freeze_embeddings, so its optimizer state does not cover "
                          f"the weights this run trains; use train.init_optimizer: fresh")
    if recipe.train.init_optimizer == "keep":
        state = rundir.read_resume_state(rundir.RunDir(root))
        if state is None or not (rundir.RunDir(root).backup / state["resume"]).is_file():
            raise ConfigError(f"train.init_optimizer: keep, but {root} holds no optimizer state "
                              f"(backup/: an averaged model folder has none); use "
                              f"train.init_optimizer: fresh")
    which = "best" if folder.best.is_file() else "last"
    runtime.import_tensorflow(threads)
    modeldir.load_model(root, weights=which, precision="float32", stamp=False)  # every check
    return Base(root, base_recipe, folder.best if which == "best" else folder.last, state)


def initialize(trainer, base: Base, train: options.TrainConfig) -> None:
    """Loads the base's weights into a fresh compiled trainer (and, to keep it, its optimizer
    state with the weights saved along with it: the base run's last epoch)."""
    from nmt.storage.weights import load_weights

    if base.state is None:
        load_weights(trainer.seq2seq, base.weights)
        log.info("initialized from %s (%s); a fresh optimizer", base.root, base.weights.name)
        return
    with warnings.catch_warnings():  # a state that does not fit: Keras only warns, so we check
        warnings.filterwarnings("ignore", "Skipping variable loading for optimizer")
        rundir.restore_resume_state(rundir.RunDir(base.root), trainer, base.state)
    if int(trainer.optimizer.iterations.numpy()) == 0:
        raise ConfigError(f"train.init_optimizer: keep, but the optimizer state of {base.root} "
                          f"does not fit this run's optimizer; use train.init_optimizer: fresh")
    trainer.optimizer.learning_rate = train.learning_rate  # this recipe's rate, not the base's
    log.info("initialized from %s: the weights and optimizer state of its epoch %d "
             "(train.init_optimizer: keep; %d updates so far)", base.root, base.state["epoch"],
             int(trainer.optimizer.iterations.numpy()))
