"""The run directory of `nmt train`: what lives where, its lock, the commit of each epoch, and
the checks that decide whether a training starts, resumes or has finished.

    RUN/recipe.yaml, model.json, vocab/, best.weights.h5, last.weights.h5: a model folder
                             (see `modeldir`)
    RUN/backup/state.json    the last committed epoch: counters, callback state, file names
    RUN/backup/*.weights.h5  the files state.json names: resume weights (with the optimizer),
                             last and best model weights, the `train.keep_best` best epochs'
                             ("kept", with their dev BLEU) and the `train.keep_last` last ones
                             ("recent"); kept after the end, so that a run can be extended by
                             more epochs and averaged (`nmt average`)
    RUN/metrics.csv          one row per epoch; RUN/tensorboard/ event files; RUN/train.log
    RUN/prepared/            the corpus as token-id shards (`prepared`), unless the recipe's
                             data.prepared names a folder of `nmt prepare`
    RUN/.lock                held (flock) by the `nmt train` using the folder; names its pid

An epoch is committed when state.json is replaced; best/last in RUN are then hard links to the
files it names, re-made on resume. A kill at any moment leaves a consistent, loadable directory.
"""
from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from nmt.config import options, recipes
from nmt.errors import ConfigError, ModelDirError, OutputError
from nmt.files import textio
from nmt.files.textio import atomic_path, atomic_write, reported_as_output_error
from nmt.storage import manifest, prepared
from nmt.storage.modeldir import MODEL_FILES, ModelDir
from nmt.storage.weights import load_weights, save_weights

# What `commit_epoch` writes into state.json and resuming reads back.
RESUME_KEYS = frozenset({"epoch", "best", "callbacks", "resume", "last", "best_weights"})
# What may change when a run is resumed: these touch neither the data nor the model.
RESUMABLE_KEYS = {("train", "epochs"), ("train", "patience"), ("train", "keep_best"),
                  ("train", "keep_last"), ("train", "average_best")}
RESUMABLE_SECTIONS = {"decode", "eval"}


class RunDir(ModelDir):
    """Paths inside a run directory."""

    def __init__(self, root: str | os.PathLike):
        super().__init__(root)
        self.backup = self.root / "backup"
        self.state = self.backup / "state.json"
        self.metrics = self.root / "metrics.csv"
        self.learning_curve = self.root / "learning_curve.png"
        self.tensorboard = self.root / "tensorboard"
        self.log = self.root / "train.log"
        self.lock = self.root / ".lock"
        self.prepared = self.root / "prepared"


def default_run_dir(recipe_path: str | os.PathLike) -> Path:
    return Path("runs") / recipes.recipe_file(recipe_path).parent.resolve().name


# ---- before training: whose folder, which state ------------------------------------------------

def refuse_foreign_folder(run: RunDir) -> None:
    """A folder that holds files but no run of nmt is not ours to write into."""
    if not run.root.is_dir():
        return
    if (run.root / prepared.INFO).is_file():
        raise ConfigError("holds prepared data (nmt prepare), not a run: give it as "
                          "data.prepared and choose another --run-dir", str(run.root))
    ours = (run.recipe.is_file() or run.vocab_dir.is_dir() or run.log.is_file()
            or (run.prepared / prepared.INFO).is_file())  # killed after preparing its data
    if not ours and any(not p.name.startswith(".") for p in run.root.iterdir()):
        raise ConfigError("the folder is not empty and is not a run directory of nmt; choose "
                          "another --run-dir", str(run.root))


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


def holder(folder: str | os.PathLike) -> str | None:
    """The pid of the `nmt train` holding a run directory's lock, or None if none does.

    Only reads: the lock file is opened read-only (never created) and tested with a shared lock.
    """
    try:
        handle = open(RunDir(folder).lock, encoding="utf-8")
    except OSError:  # no lock file: never trained into, or not a run directory
        return None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read().strip() or "unknown"
    return None


@contextlib.contextmanager
def new_folder_removed_on_failure(run: RunDir) -> Iterator[None]:
    """A run directory this training creates (and the parents it creates) is removed again if
    the training fails before it holds more than its lock (a corpus that cannot be downloaded,
    a bad corpus)."""
    made = textio.missing_folders(run.root)
    try:
        yield
    except BaseException:
        if made and run.root.is_dir() and {p.name for p in run.root.iterdir()} <= {".lock"}:
            run.lock.unlink(missing_ok=True)
            textio.remove_empty(made)
        raise


def finished_read_only(run: RunDir, recipe: options.Recipe) -> dict | None:
    """The committed state of a finished run of `recipe` whose folder cannot be written (a
    read-only copy): there is nothing to do, which is what to say rather than "cannot write".
    None for any other folder."""
    if not run.state.is_file():
        return None
    try:
        textio.check_writable(run.root, folder=True)
        return None
    except OutputError:
        pass
    state = check_resumable(run, recipe)
    return state if state and finished(state, recipe.train) else None


def check_resumable(run: RunDir, recipe: options.Recipe) -> dict | None:
    """Refuses a folder that is not a run of this recipe; returns its committed state, if any.

    A run that never committed an epoch starts afresh (its vocabularies are kept only if they
    were built from the same data and vocabulary settings).
    """
    if not run.root.exists():
        return None
    previous = (recipes.to_dict(recipes.load_recipe(run.recipe, written_by_nmt=True))
                if run.recipe.is_file() else None)
    current = recipes.to_dict(recipe)
    state = read_resume_state(run)
    if state is None:
        if previous is None or any(previous[s] != current[s] for s in ("data", "vocab")):
            shutil.rmtree(run.vocab_dir, ignore_errors=True)
        return None
    changed = [f"{s}.{k}" for s in current for k in current[s]
               if current[s][k] != previous[s][k] and (s, k) not in RESUMABLE_KEYS
               and s not in RESUMABLE_SECTIONS]
    if changed:
        raise ConfigError(f"this run directory was trained with different settings "
                          f"({', '.join(changed)}); use another --run-dir", str(run.recipe))
    return state


def finished(state: dict, train: options.TrainConfig) -> bool:
    """Whether a committed run has nothing left to do: all epochs, or early-stopped."""
    waited = state["callbacks"].get("early_stopping", {}).get("wait", 0)
    return state["epoch"] >= train.epochs or waited >= train.patience


def repair(run: RunDir, state: dict | None) -> None:
    """Clears what a killed run left behind: its temporary files and folders (never read), and
    best/last not yet pointing at the committed state's weights (a kill between commit and
    publication)."""
    for folder in (run.root, run.backup):
        for path in folder.glob(".*.tmp*"):  # a killed prepare leaves a folder
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
    for path in run.root.glob(".vocab.*"):
        shutil.rmtree(path, ignore_errors=True)
    if state:
        publish(run, state)


def trim_metrics(run: RunDir, epochs: int) -> None:
    """Drops metrics rows of epochs that will be trained again (a kill after they were logged)."""
    if not run.metrics.is_file():
        return
    with open(run.metrics, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    # A kill while a row was appended can leave it incomplete: only whole rows of done epochs stay.
    kept = [row for row in rows[1:] if len(row) == len(rows[0]) and row[0].isdigit()
            and int(row[0]) < epochs]
    with atomic_write(run.metrics) as handle:
        csv.writer(handle).writerows(rows[:1] + kept if epochs else [])


# ---- the commit of an epoch ---------------------------------------------------------------------

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
    """Points RUN/best and RUN/last at the files state.json names, writes the manifest of the
    model folder the run directory now is, and drops files state.json no longer names.

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
    manifest.write(run.root, MODEL_FILES)
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
