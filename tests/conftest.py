"""Fixtures shared by every tier: tiny generated corpora and recipes, models trained once per
session, TensorFlow, and a folder of its own for each test. Helpers that tests call directly are
in tests/helpers.py. No test reads the real corpora except those marked as using $NMT_DATA."""
from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import (SERVER_TOKEN, make_reverse_corpus, reverse_pairs, run_nmt,
                           tiny_recipe_dict, train_reverse, train_reverse_run, write_recipe)


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder `build(folder)` makes, built once per test session, also when pytest-xdist
    runs the tests in several worker processes: the first worker to ask builds it in the
    session's shared temporary folder, holding a lock, and the others wait for it and reuse it.
    Returns the path `build` returned."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # each worker's base folder sits in the session's
    folder, done = root / f"shared-{name}", root / f"shared-{name}.built"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed in another worker
            done.write_text(str(build(folder)))
    return Path(done.read_text())


@pytest.fixture
def reverse_corpus(tmp_path) -> Path:
    return make_reverse_corpus(tmp_path / "reverse")


@pytest.fixture(scope="session")
def reverse_run(tmp_path_factory) -> Path:
    """A float32 model that reverses digit strings, for every test that needs a working model
    folder. Tests must not modify it."""
    return built_once(tmp_path_factory, "reverse_run", train_reverse_run)


@pytest.fixture(scope="session")
def reverse_run_bfloat16(tmp_path_factory) -> Path:
    """The same, trained in mixed_bfloat16 and translating in bfloat16 by default."""
    return built_once(tmp_path_factory, "reverse_run_bf16",
                      lambda folder: train_reverse_run(folder, "mixed_bfloat16", "bfloat16"))


@pytest.fixture(scope="session")
def mirrored_run(tmp_path_factory) -> Path:
    """One short epoch on 400 pairs under tf.distribute's MirroredStrategy over two CPU replicas
    (`train.replicas: 2`), two batches per update (`train.accumulate: 2`): the run that the
    distribute tests check and the export tests export. Trained by `nmt train` in a process of
    its own (the CPU devices are fixed when TensorFlow starts). Tests must not modify it."""
    def build(root: Path) -> Path:
        recipe = write_recipe(root / "recipe", tiny_recipe_dict(
            make_reverse_corpus(root / "reverse", train=400),
            train={"distribution": "mirrored", "replicas": 2, "accumulate": 2}))
        code, _, err = run_nmt("train", recipe, "--run-dir", root / "run", "--threads", "2")
        assert code == 0, err[-5000:]
        return root / "run"
    return built_once(tmp_path_factory, "mirrored_run", build)


@pytest.fixture(scope="session")
def rough_model(tmp_path_factory):
    """A model after one short epoch on the reverse task: unsure, as real models are on hard
    sentences, so searches of different widths disagree. Returns (model, test sources)."""
    run = built_once(tmp_path_factory, "rough_run", train_reverse)
    from nmt.data import batching
    from nmt.storage import modeldir
    loaded = modeldir.load_model(run)
    sources = [batching.source_ids(loaded.src_tokenizer, s) for s, _ in reverse_pairs(60, seed=9)]
    return loaded.model, sources


@pytest.fixture(scope="session")
def kept_run(tmp_path_factory) -> Path:
    """Four epochs on 300 pairs keeping the 2 best and 3 last epochs, averaging the 2 best into
    `average-best-2/` and tuning on a small grid at the end. Tests must not modify it."""
    def build(root: Path) -> Path:
        from nmt.training.train import train
        corpus = make_reverse_corpus(root / "reverse", train=300)
        recipe = write_recipe(root / "recipe", tiny_recipe_dict(
            corpus, train={"epochs": 4, "keep_best": 2, "keep_last": 3, "average_best": 2,
                           "patience": 10},
            eval={"tune_beams": [1, 2], "tune_alphas": [0.0, 1.0]}))
        train(recipe, root / "run", verbose=0)
        return root / "run"
    return built_once(tmp_path_factory, "kept_run", build)


@pytest.fixture(scope="session")
def reverse_translator(reverse_run):
    """A Translator of `reverse_run` with its recipe's settings: what `nmt translate --model
    reverse_run` translates with, for tests that compare other paths to it."""
    from nmt.translation.translate import Translator
    return Translator(reverse_run)


def _ensemble_server_process(reverse_run):
    from nmt.serving.load import ServerProcess
    return ServerProcess(["--model", reverse_run, "--model", reverse_run,
                          "--batch-wait-ms", 200, "--threads", 1],
                         env=dict(os.environ, NMT_SERVE_TOKEN=SERVER_TOKEN))


@pytest.fixture(scope="session")
def _servers(reverse_run):
    """Both test servers, started together so that their start-ups (TensorFlow, loading,
    warm-up: half a minute each on a loaded core) overlap."""
    from nmt.serving.load import ServerProcess
    servers = [ServerProcess(["--model", reverse_run, "--max-lines", 16, "--max-line-chars", 200,
                              "--max-body-kb", 4, "--max-queue", 24]),
               _ensemble_server_process(reverse_run)]
    yield servers
    for server in servers:
        server.close()


@pytest.fixture(scope="session")
def reverse_server(_servers):
    """`nmt serve --model reverse_run` on a free loopback port, ready, with small limits that
    the tests reach: 16 lines a request, 200 characters a line, a 4 KiB body, 24 sentences
    queued. Tests must not stop it."""
    _servers[0].wait_ready()
    return _servers[0]


@pytest.fixture
def ensemble_server(_servers, reverse_run):
    """`nmt serve` of the ensemble reverse_run + reverse_run (whose answers are reverse_run's:
    the mean of two equal log-probabilities is the same), requiring the token SERVER_TOKEN from
    $NMT_SERVE_TOKEN; a batch waits 200 ms for more requests. tests/system/test_serve.py's
    SIGTERM test stops it; xdist's work stealing can run another test after that one on the same
    worker, which then gets a new server."""
    if _servers[1].process.poll() is not None:
        _servers[1].close()
        _servers[1] = _ensemble_server_process(reverse_run)
    _servers[1].wait_ready()
    return _servers[1]


@pytest.fixture
def tiny_recipe(tmp_path, reverse_corpus) -> Path:
    return write_recipe(tmp_path / "recipe", tiny_recipe_dict(reverse_corpus))


@pytest.fixture(scope="session")
def tf():
    """TensorFlow, imported quietly once."""
    from nmt.system import runtime
    return runtime.import_tensorflow()


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Tests run in their own folder, so default run directories never land in the checkout."""
    monkeypatch.chdir(tmp_path)
    if "NMT_DATA" not in os.environ:
        monkeypatch.setenv("NMT_DATA", str(Path(__file__).resolve().parents[1].parent / "shared"
                                           / "data"))
