"""A model folder: what a trained model is on disk, written by `nmt train` and `nmt average`,
read by everything that uses a trained model.

    DIR/recipe.yaml          the resolved recipe (every key) that trained it
    DIR/model.json           format version, model config and vocabulary sizes
    DIR/vocab/src.*, tgt.*   the tokenizers
    DIR/best.weights.h5      weights with the best dev BLEU (an average: the mean weights)
    DIR/last.weights.h5      weights after the last finished epoch (a run directory only)
    DIR/manifest.json        those files' sizes and sha256, checked when the folder loads
                             (see `manifest`; a folder written before it loads unchecked)

A run directory (`rundir.RunDir`) is a model folder with more files. Loading one runs no code
from it: JSON, safe YAML, a SentencePiece model or word list, and HDF5 arrays.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import NamedTuple

import nmt
import vocab
from nmt.config import options, recipes
from nmt.errors import ConfigError, ModelDirError
from nmt.files.textio import atomic_folder, atomic_write
from nmt.storage import manifest
from nmt.storage.weights import load_weights

FORMAT_VERSION = 1
# What a model folder's manifest lists (those present); recipe.yaml is left out (see manifest).
MODEL_FILES = ["model.json", "vocab", "best.weights.h5", "last.weights.h5"]


class ModelDir:
    """Paths inside a model folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.recipe = self.root / "recipe.yaml"
        self.model_json = self.root / "model.json"
        self.vocab_dir = self.root / "vocab"
        self.best = self.root / "best.weights.h5"
        self.last = self.root / "last.weights.h5"

    def vocab_prefix(self, side: str) -> Path:
        return self.vocab_dir / side


class LoadedModel(NamedTuple):
    model: object
    src_tokenizer: object
    tgt_tokenizer: object
    recipe: options.Recipe


# ---- writing ------------------------------------------------------------------------------------

def save_description(folder: ModelDir, recipe: options.Recipe, src_size: int,
                     tgt_size: int) -> None:
    """Writes recipe.yaml and model.json (atomically), and the manifest anew if there is one."""
    with atomic_write(folder.recipe) as handle:
        handle.write(recipes.dump_recipe(recipe))
    description = {"format_version": FORMAT_VERSION, "nmt_version": nmt.__version__,
                   "src_vocab_size": src_size, "tgt_vocab_size": tgt_size,
                   "model": recipes.to_dict(recipe)["model"]}
    with atomic_write(folder.model_json) as handle:
        json.dump(description, handle, indent=2)
        handle.write("\n")
    if (folder.root / manifest.NAME).is_file():  # a resumed run: the folder loads meanwhile
        manifest.write(folder.root, MODEL_FILES)


def save_tokenizers(folder: ModelDir, src_tokenizer, tgt_tokenizer) -> None:
    """Writes vocab/ whole or not at all."""
    with atomic_folder(folder.vocab_dir) as tmp:
        src_tokenizer.save(tmp / "src")
        tgt_tokenizer.save(tmp / "tgt")


# ---- reading ------------------------------------------------------------------------------------

def load_tokenizers(folder: ModelDir):
    try:
        return vocab.load(folder.vocab_prefix("src")), vocab.load(folder.vocab_prefix("tgt"))
    except FileNotFoundError as err:
        raise ModelDirError(f"incomplete model folder: {err}", str(folder.root)) from None
    except (OSError, RuntimeError, ValueError) as err:
        raise ModelDirError(f"cannot read its vocabulary ({err})", str(folder.vocab_dir)) from None


def read_description(root: str | os.PathLike) -> dict:
    folder = ModelDir(root)
    if not folder.root.is_dir():
        raise ModelDirError("no such model folder", str(folder.root))
    if not folder.model_json.is_file():
        raise ModelDirError("not a model folder (no model.json; is it a run directory of "
                            "`nmt train`?)", str(folder.root))
    try:
        description = json.loads(folder.model_json.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelDirError(f"unreadable ({err})", str(folder.model_json)) from None
    version = description.get("format_version") if isinstance(description, dict) else None
    if version != FORMAT_VERSION:
        raise ModelDirError(f"model folder format {version!r}, but nmt {nmt.__version__} reads "
                            f"format {FORMAT_VERSION}", str(folder.model_json))
    return description


def read_recipe(folder: ModelDir) -> options.Recipe:
    """The recipe that trained the model of a folder."""
    try:
        return recipes.load_recipe(folder.recipe, written_by_nmt=True)
    except ConfigError as err:  # the message names recipe.yaml and the line
        raise ModelDirError(str(err)) from None


def load_model(root: str | os.PathLike, weights: str = "best",
               precision: str | None = None, stamp: bool = True) -> LoadedModel:
    """Builds the model of a model folder and loads its `best` (or `last`) weights.

    precision: "float32" or "bfloat16" (the weights are cast once, as they are loaded); None:
    the recipe's `decode.precision`. stamp: False leaves the folder unwritten (no
    .verified.json: the base of train.init_from is only read).
    """
    from nmt.model.seq2seq import Seq2Seq
    from nmt.system import precision as precisions

    folder = ModelDir(root)
    description = read_description(root)
    manifest.check(folder.root, stamp=stamp)  # sizes; hashes of what changed since last checked
    recipe = read_recipe(folder)
    try:
        model_config = recipes.recipe_from_dict({"model": description["model"]}).model
        sizes = int(description["src_vocab_size"]), int(description["tgt_vocab_size"])
    except (ConfigError, KeyError, TypeError, ValueError) as err:
        raise ModelDirError(f"inconsistent model description ({err})", str(folder.model_json)) \
            from None
    src_tokenizer, tgt_tokenizer = load_tokenizers(folder)
    if (len(src_tokenizer), len(tgt_tokenizer)) != sizes:
        raise ModelDirError(f"vocabulary sizes {len(src_tokenizer)}/{len(tgt_tokenizer)} do not "
                            f"match model.json's {sizes[0]}/{sizes[1]}", str(folder.vocab_dir))
    path = {"best": folder.best, "last": folder.last}[weights]
    if not path.is_file() and weights == "best" and folder.last.is_file():
        path = folder.last
    if not path.is_file():
        raise ModelDirError("no trained weights yet (best.weights.h5 is written at the end of "
                            "the first epoch)", str(folder.root))
    with precisions.dtype_policy(precision or recipe.decode.precision):
        model = Seq2Seq(model_config, *sizes)
    load_weights(model, path)
    return LoadedModel(model, src_tokenizer, tgt_tokenizer, recipe)
