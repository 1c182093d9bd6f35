"""tf.distribute: two worker processes on 127.0.0.1 train one model
(MultiWorkerMirroredStrategy, two batches per update), and MirroredStrategy over two CPU
replicas."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from nmt.serving.load import free_port
from tests.helpers import tiny_recipe_dict, write_recipe

pytestmark = pytest.mark.slow  # worker processes train models

WORKER = """
import os, sys
os.sched_setaffinity(0, {int(sys.argv[4]) % os.cpu_count()})
from nmt.system import runtime
runtime.import_tensorflow(threads=1)
from nmt.training.train import train
result = train(sys.argv[1], sys.argv[2], verbose=0)
result.model.save_weights(sys.argv[3])
"""


def read_weights(path):
    arrays = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: arrays.__setitem__(name, item[()])
                          if isinstance(item, h5py.Dataset) else None)
    return arrays


def test_two_workers_end_with_identical_weights(tmp_path, reverse_corpus):
    recipe = write_recipe(tmp_path / "recipe", tiny_recipe_dict(
        reverse_corpus, data={"train_lines": 600},
        train={"epochs": 2, "distribution": "multi_worker", "batch_size": 32, "accumulate": 2}))
    cluster = {"worker": [f"127.0.0.1:{port}" for port in (free_port(), free_port())]}
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps(
            {"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(recipe), str(tmp_path / f"run{index}"),
             str(tmp_path / f"final{index}.weights.h5"), str(index)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=300)[0])
    finally:
        for worker in workers:
            worker.kill()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output[-12000:]
    first, second = (read_weights(tmp_path / f"final{i}.weights.h5") for i in range(2))
    assert first.keys() == second.keys() and len(first) > 10
    for name in first:
        np.testing.assert_allclose(first[name], second[name], atol=1e-6, err_msg=name)
    chief = tmp_path / "run0"
    for name in ("recipe.yaml", "model.json", "best.weights.h5", "last.weights.h5",
                 "metrics.csv", "train.log", "backup/state.json", "vocab/src.words.txt"):
        assert (chief / name).is_file(), name
    assert json.loads((chief / "backup" / "state.json").read_text())["epoch"] == 2
    other = tmp_path / "run1"
    assert not (other / "best.weights.h5").exists() and not (other / "metrics.csv").exists()


def assert_one_epoch_that_translates_in_float32(run):
    from nmt.storage import modeldir, rundir
    from nmt.translation.translate import Translator
    state = rundir.read_resume_state(rundir.RunDir(run))
    assert state["epoch"] == 1 and np.isfinite(state["best"])  # the epochs and best dev BLEU
    loaded = modeldir.load_model(run)
    assert loaded.model.compute_dtype == "float32"  # translation runs in float32 either way
    assert len(Translator(run).translate(["1 2 3"])) == 1


def test_mirrored_strategy_trains(mirrored_run):
    """The shared run (conftest): 400 pairs of the reverse task, one epoch, MirroredStrategy
    over two CPU replicas, accumulating two batches per update."""
    assert_one_epoch_that_translates_in_float32(mirrored_run)
    assert "; MirroredStrategy, 2 replicas" in (mirrored_run / "train.log").read_text()


def test_mixed_precision_trains(tmp_path, reverse_corpus):
    from nmt.training.train import train
    recipe = write_recipe(tmp_path / "r", tiny_recipe_dict(
        reverse_corpus, data={"train_lines": 400}, train={"precision": "mixed_float16"}))
    result = train(recipe, tmp_path / "run", verbose=0)
    assert result.epochs == 1 and np.isfinite(result.best_bleu)
    assert_one_epoch_that_translates_in_float32(tmp_path / "run")
