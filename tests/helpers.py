"""Helpers shared by the test tiers: tiny generated corpora and recipes, a model trained on them,
the command line in a subprocess, a scripted model for the search. Tests import them from here
(`from tests.helpers import ...`); tests/conftest.py holds the fixtures only.

Nothing here reads the real corpora except `real_corpus`, under $NMT_DATA.
"""
from __future__ import annotations

import contextlib
import csv
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nmt.config import recipes
from vocab import BOS, EOS, PAD

DIGITS = "0 1 2 3 4 5 6 7 8 9".split()


# ---- corpora and recipes ----------------------------------------------------------------------

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


def real_corpus() -> Path:
    """The small_parallel_enja folder under $NMT_DATA (CI sets NMT_DATA=../shared/data)."""
    return recipes.data_root() / "small_parallel_enja"


# ---- trained models ---------------------------------------------------------------------------

def train_reverse(root: Path, letters: bool = False, pairs: int = 1500, **sections) -> Path:
    """Trains the tiny recipe (one short epoch unless `sections` say otherwise) on `pairs` pairs
    of the reverse task under `root`; returns the run directory, root/run. `letters`: targets
    spelled in letters (a for 0, ...), so that source and target vocabularies differ."""
    corpus = make_reverse_corpus(root / "reverse", train=pairs)
    for path in corpus.glob("*.tgt") if letters else ():
        path.write_text(path.read_text().translate(str.maketrans("0123456789", "abcdefghij")))
    recipe = write_recipe(root / "recipe", tiny_recipe_dict(corpus, **sections))
    from nmt.training.train import train
    train(recipe, root / "run", verbose=0)
    return root / "run"


def train_reverse_run(root: Path, precision: str = "float32",
                      decode_precision: str = "float32") -> Path:
    """Trains a model until it reverses digit strings (about 20 s on 2 cores); returns its
    run directory."""
    return train_reverse(
        root, pairs=3000,
        model={"embedding_dim": 32, "encoder_units": 32, "decoder_units": 64,
               "attention_units": 32},
        train={"epochs": 5, "learning_rate": 0.01, "patience": 10, "precision": precision},
        decode={"precision": decode_precision})


def metrics_rows(run: Path) -> list:
    """The rows of a run's metrics.csv, one dict of strings per epoch."""
    with open(run / "metrics.csv", newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# ---- the command line -------------------------------------------------------------------------

NMT = [sys.executable, "-m", "nmt"]


def run_nmt(*args, stdin=None):
    """`python -m nmt ARGS` in a subprocess: exit status, stdout, stderr."""
    done = subprocess.run([*NMT, *map(str, args)], input=stdin, capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


def nmt_translate(translator, folder: Path, lines, **options) -> list[str]:
    """The lines `nmt translate` writes for `lines` with `translator`'s settings and `options`
    (nbest, scores, alignments): its function, in this process."""
    from nmt.translation.translate import translate_file
    source = write_lines(folder / "source.txt", lines)
    translate_file(translator, str(source), str(folder / "out.txt"), **options)
    return (folder / "out.txt").read_text(encoding="utf-8").splitlines()


SERVER_TOKEN = "s3cret-token-0123456789"  # what the test ensemble server requires


def assert_one_line_error(code, err, *fragments):
    assert code == 1, err
    assert err.startswith("nmt: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


# ---- unwritable and full destinations ---------------------------------------------------------

def files_of(folder: Path) -> dict:
    """Every file under `folder` with its bytes and mode: to show that nothing was touched."""
    return {p: (p.read_bytes(), p.stat().st_mode) for p in sorted(folder.rglob("*"))
            if p.is_file()}


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` made unwritable for this process: chmod for a user, a read-only bind mount for
    root (whom permissions do not stop)."""
    folder.chmod(0o555)
    mounted = False
    if os.geteuid() == 0:
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        mounted = True
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
    try:
        yield folder
    finally:
        if mounted:
            subprocess.run(["umount", str(folder)], check=True)
        folder.chmod(0o755)


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "512k"):
    """`folder` as a tmpfs of `size`: a disk that a model's weights do not fit on, though small
    files do. Mounting needs root: the test is skipped for a user."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                   check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


# ---- killed training runs (tests/system/fault_driver.py) --------------------------------------

DRIVER = Path(__file__).parent / "system" / "fault_driver.py"
KEEP = 2  # train.keep_best and train.keep_last of the killed runs


def assert_consistent(run: Path):
    """Whatever exists of the run directory loads, and best/last are the committed epoch's."""
    from nmt.storage import modeldir, rundir
    from nmt.storage.weights import load_weights
    state = rundir.read_resume_state(rundir.RunDir(run))
    if state is None:
        assert not (run / "best.weights.h5").exists()
        return
    kept = [entry["weights"] for entry in state["kept"]]
    for name in (state["resume"], state["last"], state["best_weights"], *kept, *state["recent"]):
        assert (run / "backup" / name).is_file()
    for weights in ("best", "last"):
        modeldir.load_model(run, weights)
    model = modeldir.load_model(run).model
    for name in kept + state["recent"]:  # every kept epoch's weights load
        load_weights(model, run / "backup" / name)
    committed = [row for row in metrics_rows(run) if int(row["epoch"]) < state["epoch"]]
    assert max(float(row["val_bleu"]) for row in committed) == pytest.approx(state["best"])
    # The KEEP best committed epochs by dev BLEU (ties to the earlier), and the KEEP last.
    ranked = sorted(committed, key=lambda row: (-float(row["val_bleu"]), int(row["epoch"])))
    assert [e["epoch"] for e in state["kept"]] == [int(r["epoch"]) + 1 for r in ranked[:KEEP]]
    assert state["recent"] == [f"last-{e:04d}.weights.h5"
                               for e in range(max(1, state["epoch"] - KEEP + 1),
                                              state["epoch"] + 1)]


# ---- search with known probabilities ----------------------------------------------------------

A, B, C = 4, 5, 6  # the scripted model's three real tokens; vocabulary size 7

# From BOS: EOS 0.55, A 0.45.  After A: EOS 0.7, B 0.3.  After B: EOS 1.
SHORT_OR_LONG = {BOS: {EOS: 0.55, A: 0.45}, A: {EOS: 0.7, B: 0.3}, B: {EOS: 1.0}}

# Normalized scores of the same output, per output token (EOS included). bfloat16 keeps 8 bits
# of mantissa (logits of about 10 are rounded by up to 0.03); measured on this task: at most
# 0.0006, 298 of 300 outputs identical.
SCORE_TOLERANCE = 0.005


def random_seq2seq(seed: int, src_vocab: int = 12):
    """A tiny Seq2Seq with random weights (target vocabulary 7, as the scripted model's), its
    output kernel scaled by 5: sharp distributions, so beams of different widths disagree."""
    import keras

    from nmt.config.options import ModelConfig
    from nmt.model.seq2seq import Seq2Seq
    keras.utils.set_random_seed(seed)
    config = ModelConfig(embedding_dim=8, encoder_units=6, encoder_layers=1, decoder_units=10,
                         attention_units=7, dropout=0.0)
    model = Seq2Seq(config, src_vocab, 7)
    kernel = model.decoder.output_layer.kernel
    kernel.assign(kernel * 5.0)
    return model


def random_sources(count: int, seed: int, vocab: int = 12) -> np.ndarray:
    """`count` padded source rows of 1-5 random real tokens below `vocab`, each ended by EOS."""
    from nmt.data.batching import pad_batch
    rng = np.random.default_rng(seed)
    return pad_batch([list(rng.integers(4, vocab, size=rng.integers(1, 6))) + [EOS]
                      for _ in range(count)])


class ScriptedModel:
    """A fake model with known probabilities: p(next | previous token) from a fixed table.

    It ignores the source (attention is uniform over real source tokens) and implements the
    inference protocol plus `teacher_forced`, which is all the decoding module may use.
    """

    def __init__(self, table: dict):
        import tensorflow as tf
        probs = np.full((7, 7), 1e-9)
        for previous, row in table.items():
            for token, p in row.items():
                probs[previous, token] = p
        self.log_table = tf.constant(np.log(probs / probs.sum(axis=1, keepdims=True)), tf.float32)
        self.tf = tf

    def step_tables(self):
        return ()

    def encode(self, source):
        tf = self.tf
        mask = tf.not_equal(source, PAD)
        batch = tf.shape(source)[0]
        return {"mask": mask}, (tf.zeros([batch]),)

    def decode_step(self, token, state, memory, tables, rows_per_memory=1):
        tf = self.tf
        weights = tf.cast(memory["mask"], tf.float32)
        weights /= tf.reduce_sum(weights, axis=1, keepdims=True)
        return (tf.gather(self.log_table, token), (state[0] + 1.0,),
                tf.repeat(weights, rows_per_memory, axis=0))

    def teacher_forced(self, source, target_in):
        tf = self.tf
        memory, _ = self.encode(source)
        weights = tf.cast(memory["mask"], tf.float32)
        weights /= tf.reduce_sum(weights, axis=1, keepdims=True)
        steps = tf.shape(target_in)[1]
        return tf.gather(self.log_table, target_in), tf.tile(weights[:, None], [1, steps, 1])
