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
    RUN/.lock                held (flock) by the `nmt train` using the folder; names its pid

An epoch is committed when state.json is replaced; best/last in RUN are then hard links to the
files it names, re-made on resume. A kill at any moment leaves a consistent, loadable directory.

A model folder needs only recipe.yaml, model.json, vocab/ and the weights. Loading one runs no
code from it: JSON, safe YAML, a SentencePiece model or word list, and HDF5 arrays.
"""
from __future__ import annotations

import atexit
import contextlib
import errno
import fcntl
import gc
import io
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

import nmt
import vocab
from nmt.config import options, recipes
from nmt.errors import ConfigError, ModelDirError, OutputError
from nmt.files import textio
from nmt.files.textio import NEW_FOLDER_MODE, atomic_path, atomic_write, reported_as_output_error

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
        self.learning_curve = self.root / "learning_curve.png"
        self.tensorboard = self.root / "tensorboard"
        self.log = self.root / "train.log"
        self.lock = self.root / ".lock"

    def vocab_prefix(self, side: str) -> Path:
        return self.vocab_dir / side


class LoadedModel(NamedTuple):
    model: object
    src_tokenizer: object
    tgt_tokenizer: object
    recipe: options.Recipe


# ---- writing ------------------------------------------------------------------------------------

def save_description(run: RunDir, recipe: options.Recipe, src_size: int, tgt_size: int) -> None:
    """Writes recipe.yaml and model.json (atomically)."""
    with atomic_write(run.recipe) as handle:
        handle.write(recipes.dump_recipe(recipe))
    description = {"format_version": FORMAT_VERSION, "nmt_version": nmt.__version__,
                   "src_vocab_size": src_size, "tgt_vocab_size": tgt_size,
                   "model": recipes.to_dict(recipe)["model"]}
    with atomic_write(run.model_json) as handle:
        json.dump(description, handle, indent=2)
        handle.write("\n")


def save_tokenizers(run: RunDir, src_tokenizer, tgt_tokenizer) -> None:
    """Writes vocab/ whole or not at all: into a temporary folder, then renamed."""
    with reported_as_output_error(run.vocab_dir):
        tmp = Path(tempfile.mkdtemp(dir=run.root, prefix=".vocab."))
        try:
            os.chmod(tmp, NEW_FOLDER_MODE)  # mkdtemp's 0700 would hide the model from others
            src_tokenizer.save(tmp / "src")
            tgt_tokenizer.save(tmp / "tgt")
            os.replace(tmp, run.vocab_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def locked(run: RunDir) -> Iterator[None]:
    """Holds the run directory for one `nmt train`: a second one on it fails at once.

    An flock on RUN/.lock, which the OS releases when the process ends, however it ends; the
    file names the holder's pid. Also finds a run directory that cannot be written, now.
    """
    if run.root.exists() and not run.root.is_dir():
        raise OutputError("is a file; --run-dir takes a folder", str(run.root))
    textio.make_folder(run.root)
    textio.check_writable(run.root, folder=True)
    with reported_as_output_error(run.lock):
        handle = open(run.lock, "a+", encoding="utf-8")
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise OutputError(f"in use by another nmt train (pid {holder}); wait for it to "
                              f"end or choose another --run-dir", str(run.root)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield


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
    """Writes a model's weights atomically (a compiled model's include its optimizer state).

    HDF5 does not survive a full disk: it repeats the error from the destructor of each object
    of the half-written file and crashes in its exit handler. So the space is checked first, and
    if a write fails all the same, the process leaves without running that handler.
    """
    _check_space(model, path)
    try:
        with atomic_path(path, suffix=".weights.h5") as tmp, _quiet_h5py_destructors():
            model.save_weights(tmp)
    except OutputError:
        atexit.register(_exit_skipping_hdf5_handler)
        raise


def _check_space(model, path: Path) -> None:
    """Raises OutputError if the weights would not fit on the disk of `path` (with a margin)."""
    variables = list(model.weights) + list(getattr(getattr(model, "optimizer", None),
                                                   "variables", []))
    needed = 1.1 * sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize for v in variables) \
        + (1 << 20)
    folder = path.parent
    with reported_as_output_error(path):
        folder.mkdir(parents=True, exist_ok=True)
        disk = os.statvfs(folder)
    if disk.f_bavail * disk.f_frsize < needed:
        raise OutputError(f"cannot write ({os.strerror(errno.ENOSPC)}: {needed / 2**20:.1f} MiB "
                          f"needed, {disk.f_bavail * disk.f_frsize / 2**20:.1f} MiB free)",
                          str(path))


@contextlib.contextmanager
def _quiet_h5py_destructors() -> Iterator[None]:
    """Holds back what is printed while the weights are written: if the write fails, that is
    h5py's destructors repeating its error (Cython prints their tracebacks to sys.stderr)."""
    previous_stderr, previous_hook = sys.stderr, sys.unraisablehook
    sys.stderr, sys.unraisablehook = io.StringIO(), lambda unraisable: None
    try:
        yield
        previous_stderr.write(sys.stderr.getvalue())
    finally:
        gc.collect()  # the failed file's objects go now, while their complaints are held back
        sys.stderr, sys.unraisablehook = previous_stderr, previous_hook


def _exit_skipping_hdf5_handler() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def load_weights(model, path: Path) -> None:
    if not path.is_file():
        raise ModelDirError("no such weights file", str(path))
    try:
        model.load_weights(path)
    except Exception as err:  # h5py and Keras raise many types for truncated or foreign files
        reason = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ModelDirError(f"cannot load weights, the file is truncated, corrupt or from "
                            f"another model ({reason})", str(path)) from None


# ---- resume state -------------------------------------------------------------------------------

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
    from nmt.model.seq2seq import Seq2Seq
    from nmt.system import precision as precisions

    run = RunDir(root)
    description = read_description(root)
    try:
        recipe = recipes.load_recipe(run.recipe, written_by_nmt=True)
    except ConfigError as err:  # the message names recipe.yaml and the line
        raise ModelDirError(str(err)) from None
    try:
        model_config = recipes.recipe_from_dict({"model": description["model"]}).model
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
        model = Seq2Seq(model_config, *sizes)
    load_weights(model, path)
    return LoadedModel(model, src_tokenizer, tgt_tokenizer, recipe)

