"""The run directory: what lives where, atomic saves, and loading a model folder for translation.

    RUN/recipe.yaml          the resolved recipe (every key) that trained it
    RUN/model.json           format version, model config and vocabulary sizes
    RUN/vocab/src.*, tgt.*   the tokenizers
    RUN/best.weights.h5      weights with the best dev BLEU so far
    RUN/last.weights.h5      weights after the last finished epoch
    RUN/backup/state.json    the last committed epoch: counters, callback state, file names
    RUN/backup/*.weights.h5  the files state.json names: resume weights (with the optimizer),
                             last and best model weights, the `train.keep_best` best epochs'
                             ("kept", with their dev BLEU) and the `train.keep_last` last ones
                             ("recent"); kept after the end, so that a run can be extended by
                             more epochs and averaged (`nmt average`)
    RUN/metrics.csv          one row per epoch; RUN/tensorboard/ event files; RUN/train.log

An epoch is committed when state.json is replaced; best/last in RUN are then hard links to the
files it names, re-made on resume. A kill at any moment leaves a consistent, loadable directory.

A model folder needs only recipe.yaml, model.json, vocab/ and the weights. Loading one runs no
code from it: JSON, safe YAML, a SentencePiece model or word list, and HDF5 arrays.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import NamedTuple

import nmt
import vocab
from nmt import config
from nmt.errors import ConfigError, ModelDirError
from nmt.textio import atomic_path, atomic_write

FORMAT_VERSION = 1
# What `commit_epoch` writes into state.json and resuming reads back.
RESUME_KEYS = frozenset({"epoch", "best", "callbacks", "resume", "last", "best_weights"})


class RunDir:
    """Paths inside a run directory."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.recipe = self.root / "recipe.yaml"
        self.model_json = self.root / "model.json"
        self.vocab_dir = self.root / "vocab"
        self.best = self.root / "best.weights.h5"
        self.last = self.root / "last.weights.h5"
        self.backup = self.root / "backup"
        self.state = self.backup / "state.json"
        self.metrics = self.root / "metrics.csv"
        self.tensorboard = self.root / "tensorboard"
        self.log = self.root / "train.log"

    def vocab_prefix(self, side: str) -> Path:
        return self.vocab_dir / side


class LoadedModel(NamedTuple):
    model: object
    src_tokenizer: object
    tgt_tokenizer: object
    recipe: config.Recipe


# ---- writing ------------------------------------------------------------------------------------

def save_description(run: RunDir, recipe: config.Recipe, src_size: int, tgt_size: int) -> None:
    """Writes recipe.yaml and model.json (atomically)."""
    with atomic_write(run.recipe) as handle:
        handle.write(config.dump_recipe(recipe))
    description = {"format_version": FORMAT_VERSION, "nmt_version": nmt.__version__,
                   "src_vocab_size": src_size, "tgt_vocab_size": tgt_size,
                   "model": config.to_dict(recipe)["model"]}
    with atomic_write(run.model_json) as handle:
        json.dump(description, handle, indent=2)
        handle.write("\n")


def save_tokenizers(run: RunDir, src_tokenizer, tgt_tokenizer) -> None:
    """Writes vocab/ whole or not at all: into a temporary folder, then renamed."""
    tmp = Path(tempfile.mkdtemp(dir=run.root, prefix=".vocab."))
    try:
        src_tokenizer.save(tmp / "src")
        tgt_tokenizer.save(tmp / "tgt")
        os.replace(tmp, run.vocab_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def remove_temporaries(run: RunDir) -> None:
    """Deletes the temporary files and folders a killed run left behind (never read)."""
    for folder in (run.root, run.backup):
        for path in folder.glob(".*.tmp*"):
            path.unlink(missing_ok=True)
    for path in run.root.glob(".vocab.*"):
        shutil.rmtree(path, ignore_errors=True)


def load_tokenizers(run: RunDir):
    try:
        return vocab.load(run.vocab_prefix("src")), vocab.load(run.vocab_prefix("tgt"))
    except FileNotFoundError as err:
        raise ModelDirError(f"incomplete model folder: {err}", str(run.root)) from None
    except (OSError, RuntimeError, ValueError) as err:
        raise ModelDirError(f"cannot read its vocabulary ({err})", str(run.vocab_dir)) from None


def save_weights(model, path: Path) -> None:
    """Writes a model's weights atomically (a compiled model's include its optimizer state)."""
    with atomic_path(path, suffix=".weights.h5") as tmp:
        model.save_weights(tmp)


def load_weights(model, path: Path) -> None:
    if not path.is_file():
        raise ModelDirError("no such weights file", str(path))
    try:
        model.load_weights(path)
    except Exception as err:  # h5py and Keras raise many types for truncated or foreign files
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ModelDirError(f"cannot load weights, the file is truncated, corrupt or from "
                            f"another model ({reason})", str(path)) from None


# ---- resume state ---------------------------------------------------------------------------------

def commit_epoch(run: RunDir, trainer, state: dict, bleu: float, keep_best: int = 1,
                 keep_last: int = 1) -> dict:
    """Saves one finished epoch of dev BLEU `bleu`; `state` holds its counters and callback
    state.

    Writes the resume weights and the model weights into backup/, then state.json naming them
    (the commit), then publishes best/last and deletes the files no longer named. Returns the
    state as written.
    """
    epoch = state["epoch"]
    previous = read_resume_state(run) or {}
    resume, last = f"resume-{epoch:04d}.weights.h5", f"last-{epoch:04d}.weights.h5"
    save_weights(trainer, run.backup / resume)
    save_weights(trainer.seq2seq, run.backup / last)
    # Ties go to the earlier epoch: a later one must be strictly better to replace it.
    kept = sorted(kept_epochs(previous) + [{"epoch": epoch, "bleu": bleu, "weights": last}],
                  key=lambda entry: (-entry["bleu"], entry["epoch"]))[:keep_best]
    recent = (previous.get("recent", []) + [last])[-keep_last:]
    state = {**state, "resume": resume, "last": last, "best_weights": kept[0]["weights"],
             "kept": kept, "recent": recent}
    with atomic_write(run.state) as handle:
        json.dump(state, handle, indent=2)
    publish(run, state)
    return state


def kept_epochs(state: dict) -> list[dict]:
    """The best epochs a committed state keeps, best first: {"epoch", "bleu", "weights"}."""
    if not state:
        return []
    return state.get("kept") or [{"epoch": 0, "bleu": state["best"],
                                  "weights": state["best_weights"]}]


def publish(run: RunDir, state: dict) -> None:
    """Points RUN/best and RUN/last at the files state.json names; drops files it no longer names.

    Hard links replaced atomically: no copy, and never a half-written best or last.
    """
    for name, target in ((state["last"], run.last), (state["best_weights"], run.best)):
        source = run.backup / name
        # rename() between two links of one file does nothing: skip what is already in place.
        if target.exists() and os.path.samefile(source, target):
            continue
        with atomic_path(target, suffix=".weights.h5") as tmp:
            tmp.unlink()
            os.link(source, tmp)
    named = {state["resume"], state["last"], state["best_weights"],
             *(entry["weights"] for entry in state.get("kept", [])), *state.get("recent", [])}
    for path in run.backup.glob("*.weights.h5"):
        if path.name not in named:
            path.unlink(missing_ok=True)


def read_resume_state(run: RunDir) -> dict | None:
    """The committed state, or None for a run that has not finished an epoch."""
    if not run.state.is_file():
        return None
    try:
        state = json.loads(run.state.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelDirError(f"unreadable resume state ({err})", str(run.state)) from None
    missing = sorted(RESUME_KEYS - set(state)) if isinstance(state, dict) else ["all"]
    if missing:
        raise ModelDirError(f"resume state lacks {', '.join(missing)}: written by another nmt "
                            f"version, or damaged; train into a new run directory",
                            str(run.state))
    return state


def restore_resume_state(run: RunDir, trainer, state: dict) -> None:
    """Loads the committed weights and optimizer state into a compiled trainer."""
    trainer.optimizer.build(trainer.trainable_variables)
    load_weights(trainer, run.backup / state["resume"])


# ---- reading a model folder ---------------------------------------------------------------------

def read_description(root: str | os.PathLike) -> dict:
    run = RunDir(root)
    if not run.root.is_dir():
        raise ModelDirError("no such model folder", str(run.root))
    if not run.model_json.is_file():
        raise ModelDirError("not a model folder (no model.json; is it a run directory of "
                            "`nmt train`?)", str(run.root))
    try:
        description = json.loads(run.model_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelDirError(f"unreadable ({err})", str(run.model_json)) from None
    version = description.get("format_version") if isinstance(description, dict) else None
    if version != FORMAT_VERSION:
        raise ModelDirError(f"model folder format {version!r}, but nmt {nmt.__version__} reads "
                            f"format {FORMAT_VERSION}", str(run.model_json))
    return description


def load_model(root: str | os.PathLike, weights: str = "best",
               precision: str | None = None) -> LoadedModel:
    """Builds the model of a run directory and loads its `best` (or `last`) weights.

    precision: "float32" or "bfloat16" (the weights are cast once, as they are loaded); None:
    the recipe's `decode.precision`.
    """
    from nmt import precision as precisions
    from nmt.model import Seq2Seq

    run = RunDir(root)
    description = read_description(root)
    try:
        recipe = config.load_recipe(run.recipe, written_by_nmt=True)
        model_config = config.recipe_from_dict({"model": description["model"]}).model
        sizes = int(description["src_vocab_size"]), int(description["tgt_vocab_size"])
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        raise ModelDirError(f"inconsistent model description ({err})", str(run.model_json)) \
            from None
    src_tokenizer, tgt_tokenizer = load_tokenizers(run)
    if (len(src_tokenizer), len(tgt_tokenizer)) != sizes:
        raise ModelDirError(f"vocabulary sizes {len(src_tokenizer)}/{len(tgt_tokenizer)} do not "
                            f"match model.json's {sizes[0]}/{sizes[1]}", str(run.vocab_dir))
    path = {"best": run.best, "last": run.last}[weights]
    if not path.is_file() and weights == "best" and run.last.is_file():
        path = run.last
    if not path.is_file():
        raise ModelDirError("no trained weights yet (best.weights.h5 is written at the end of "
                            "the first epoch)", str(run.root))
    with precisions.dtype_policy(precision or recipe.decode.precision):
        model = Seq2Seq.from_model_config(model_config, *sizes)
    load_weights(model, path)
    return LoadedModel(model, src_tokenizer, tgt_tokenizer, recipe)

