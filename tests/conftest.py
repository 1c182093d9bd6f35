"""Shared fixtures: tiny generated corpora and recipes. No test reads the real corpora except those
marked as using $NMT_DATA."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from nmt.config import recipes

DIGITS = "0 1 2 3 4 5 6 7 8 9".split()


def write_lines(path: Path, lines) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def reverse_pairs(count: int, seed: int, min_len: int = 2, max_len: int = 8):
    """Digit strings and their reverses: a task a small attentional model learns in a minute."""
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        tokens = [rng.choice(DIGITS) for _ in range(rng.randint(min_len, max_len))]
        pairs.append((" ".join(tokens), " ".join(reversed(tokens))))
    return pairs


def make_reverse_corpus(folder: Path, train: int = 2000) -> Path:
    """A corpus folder with train, dev (100) and test (100) pairs of the reverse task."""
    folder.mkdir(parents=True)
    for split, count, seed in (("train", train, 1), ("dev", 100, 2), ("test", 100, 3)):
        pairs = reverse_pairs(count, seed)
        write_lines(folder / f"{split}.src", [s for s, _ in pairs])
        write_lines(folder / f"{split}.tgt", [t for _, t in pairs])
    return folder


@pytest.fixture
def reverse_corpus(tmp_path) -> Path:
    return make_reverse_corpus(tmp_path / "reverse")


def train_reverse_run(root: Path, precision: str = "float32",
                      decode_precision: str = "float32") -> Path:
    """Trains a model until it reverses digit strings (about 20 s on 2 cores); returns its
    run directory."""
    corpus = make_reverse_corpus(root / "reverse", train=3000)
    recipe = write_recipe(root / "recipe", tiny_recipe_dict(
        corpus, model={"embedding_dim": 32, "encoder_units": 32, "decoder_units": 64,
                       "attention_units": 32},
        train={"epochs": 5, "learning_rate": 0.01, "patience": 10, "precision": precision},
        decode={"precision": decode_precision}))
    from nmt.training.train import train
    train(recipe, root / "run", verbose=0)
    return root / "run"


@pytest.fixture(scope="session")
def reverse_run(tmp_path_factory) -> Path:
    """A float32 model that reverses digit strings, for every test that needs a working model
    folder. Tests must not modify it."""
    return train_reverse_run(tmp_path_factory.mktemp("reverse_run"))


@pytest.fixture(scope="session")
def reverse_run_bfloat16(tmp_path_factory) -> Path:
    """The same, trained in mixed_bfloat16 and translating in bfloat16 by default."""
    return train_reverse_run(tmp_path_factory.mktemp("reverse_run_bf16"), "mixed_bfloat16",
                             "bfloat16")


@pytest.fixture(scope="session")
def rough_model(tmp_path_factory):
    """A model after one short epoch on the reverse task: unsure, as real models are on hard
    sentences, so searches of different widths disagree. Returns (model, test sources)."""
    root = tmp_path_factory.mktemp("rough_run")
    corpus = make_reverse_corpus(root / "reverse", train=1500)
    recipe = write_recipe(root / "recipe", tiny_recipe_dict(corpus, train={"epochs": 1}))
    from nmt.data import batching
    from nmt.storage import modeldir
    from nmt.training.train import train
    train(recipe, root / "run", verbose=0)
    loaded = modeldir.load_model(root / "run")
    sources = [batching.source_ids(loaded.src_tokenizer, s) for s, _ in reverse_pairs(60, seed=9)]
    return loaded.model, sources


def tiny_recipe_dict(corpus: Path, **sections) -> dict:
    """A recipe for a model small enough to train for a few steps in seconds."""
    values = {
        "data": {"corpus": str(corpus), "src": "src", "tgt": "tgt", "max_len": 20},
        "vocab": {"kind": "words", "size": 100},
        "model": {"embedding_dim": 16, "encoder_units": 16, "encoder_layers": 1,
                  "decoder_units": 32, "attention_units": 16, "dropout": 0.0},
        "train": {"batch_size": 32, "epochs": 1, "learning_rate": 0.01, "seed": 1},
        "decode": {"beam_size": 3, "batch_size": 32},
        "eval": {"tokenize": "none", "beam_sweep": [1, 2], "tune_beams": []},
    }
    for section, changes in sections.items():
        values[section].update(changes)
    return values


def write_recipe(folder: Path, values: dict) -> Path:
    import yaml
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "recipe.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


@pytest.fixture
def tiny_recipe(tmp_path, reverse_corpus) -> Path:
    return write_recipe(tmp_path / "recipe", tiny_recipe_dict(reverse_corpus))


@pytest.fixture(scope="session")
def tf():
    """TensorFlow, imported quietly once."""
    from nmt.system import runtime
    return runtime.import_tensorflow()


def real_corpus() -> Path:
    """The small_parallel_enja folder under $NMT_DATA (CI sets NMT_DATA=../shared/data)."""
    return recipes.data_root() / "small_parallel_enja"


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Tests run in their own folder, so default run directories never land in the checkout."""
    monkeypatch.chdir(tmp_path)
    if "NMT_DATA" not in os.environ:
        monkeypatch.setenv("NMT_DATA", str(Path(__file__).resolve().parents[1].parent / "shared"
                                           / "data"))
