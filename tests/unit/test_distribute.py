"""Which process is the chief, and how many train together, from TF_CONFIG."""
import json

import pytest

from nmt.system import distribute


def _cluster(monkeypatch, cluster, task):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": task}))


def test_alone_without_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.is_chief()
    assert distribute.worker_count() == 1


@pytest.mark.parametrize("index, chief", [(0, True), (1, False)])
def test_worker_zero_is_the_chief_without_a_chief_task(monkeypatch, index, chief):
    _cluster(monkeypatch, {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
             {"type": "worker", "index": index})
    assert distribute.is_chief() is chief
    assert distribute.worker_count() == 2


def test_a_chief_task_counts_and_leads(monkeypatch):
    _cluster(monkeypatch, {"chief": ["127.0.0.1:1"], "worker": ["127.0.0.1:2", "127.0.0.1:3"]},
             {"type": "worker", "index": 0})
    assert not distribute.is_chief()
    assert distribute.worker_count() == 3
