"""`nmt average`: a model folder whose weights are the element-wise mean of several epochs'.

The epochs come from a run directory's committed state (`rundir.kept_epochs` for the best
by dev BLEU, "recent" for the last ones), so only weights the run kept can be averaged: see
`train.keep_best` and `train.keep_last`.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from nmt.errors import ModelDirError
from nmt.files import textio
from nmt.storage import manifest, modeldir, rundir
from nmt.storage.weights import load_weights, save_weights

RECORD = "averaged.json"  # in an averaged model folder: which weights were averaged


def chosen_weights(run: rundir.RunDir, best: int | None = None,
                   last: int | None = None) -> list[str]:
    """File names (in backup/) of the `best` best (best first) or the `last` last epochs of a
    run."""
    state = rundir.read_resume_state(run)
    if state is None:
        raise ModelDirError("no committed epoch to average (not a run directory of `nmt train`, "
                            "or its first epoch has not finished)", str(run.root))
    if best:
        found = [entry["weights"] for entry in rundir.kept_epochs(state)][:best]
        setting, wanted = "train.keep_best", best
    else:
        found = state.get("recent", [state["last"]])[-last:]
        setting, wanted = "train.keep_last", last
    if len(found) < wanted:
        raise ModelDirError(f"the run keeps the weights of {len(found)} such epochs, not "
                            f"{wanted} (train with {setting}: {wanted} or more)", str(run.root))
    return found


def check_output(run_dir: str | os.PathLike, best: int | None = None, last: int | None = None,
                 out: str | os.PathLike | None = None) -> Path:
    """The model folder to write (default: RUN/average-best-K or -last-K), checked before any
    model loads: it can be written, and is new or an earlier average (which is replaced)."""
    out = Path(out) if out else Path(run_dir) / (f"average-best-{best}" if best else
                                                 f"average-last-{last}")
    if out.exists() and not (out / RECORD).is_file():
        raise ModelDirError("exists and is not a folder written by `nmt average`; choose "
                            "another -o", str(out))
    textio.check_folder_writable(out)
    return out


def average_run(run_dir: str | os.PathLike, best: int | None = None, last: int | None = None,
                out: str | os.PathLike | None = None) -> Path:
    """Writes a model folder (recipe, description, vocabularies, the mean weights as
    best.weights.h5, and averaged.json naming its sources) and returns its path.

    The folder appears whole or not at all; an earlier average at `out` is replaced, any other
    existing folder is an error.
    """
    run = rundir.RunDir(run_dir)
    names = chosen_weights(run, best, last)
    out = check_output(run_dir, best, last, out)
    # float32 whatever the recipe translates in: a bfloat16 model would round every mean.
    model = modeldir.load_model(run.root, precision="float32").model
    total = None
    for name in names:
        load_weights(model, run.backup / name)
        weights = [w.astype("float64") for w in model.get_weights()]
        total = weights if total is None else [t + w for t, w in zip(total, weights)]
    model.set_weights([(t / len(names)).astype(w.dtype) for t, w in zip(total,
                                                                        model.get_weights())])
    with textio.atomic_folder(out, replace=True) as tmp:
        folder = modeldir.ModelDir(tmp)
        shutil.copy(run.recipe, folder.recipe)
        shutil.copy(run.model_json, folder.model_json)
        shutil.copytree(run.vocab_dir, folder.vocab_dir)
        save_weights(model, folder.best)
        dev_bleu = {e["weights"]: e["bleu"] for e in rundir.kept_epochs(
            rundir.read_resume_state(run))}
        record = {"run": str(run.root.resolve()),
                  "chosen": f"best {best}" if best else f"last {last}",
                  "weights": [{"file": name, "dev_bleu": dev_bleu.get(name)} for name in names]}
        (tmp / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        manifest.write(tmp, [*modeldir.MODEL_FILES, RECORD])
    return out
