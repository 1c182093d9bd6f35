"""Prepared data: the shard format and reader, the parallel encoding, the epoch's batch count,
and the prepared folder's checks (`nmt.data.shards`, `nmt.storage.prepared`)."""
import json
import shutil

import numpy as np
import pytest
from tests.helpers import reverse_pairs, tiny_recipe_dict, write_lines, write_recipe

from nmt.config import recipes
from nmt.data import batching, shards
from nmt.errors import ConfigError, DataError
from nmt.storage import manifest, prepared


def recipe_for(corpus, **data):
    path = write_recipe(corpus.parent / "recipe", tiny_recipe_dict(corpus, data=data))
    return recipes.load_recipe(path)


def sorted_corpus(folder, count=3000):
    """A reverse-task corpus sorted by length, then by source (as many published corpora are)."""
    folder.mkdir()
    pairs = sorted(reverse_pairs(count, 5, max_len=12), key=lambda p: (len(p[0]), p[0]))
    for split, chosen in (("train", pairs), ("dev", pairs[:50])):
        write_lines(folder / f"{split}.src", [s for s, _ in chosen])
        write_lines(folder / f"{split}.tgt", [t for _, t in chosen])
    return folder


def test_a_shard_reads_back_the_same_in_numpy_and_in_tensorflow(tmp_path, tf):
    sources = [np.array([5, 6, 3]), np.array([7, 3]), np.array([3])]
    targets = [np.array([2, 9, 3]), np.array([2, 8, 8, 8, 3]), np.array([2, 3])]
    path = tmp_path / shards.shard_name(0)
    shards.write_shard(path, sources, targets)
    read = shards.read_shard(path)
    streamed = [(s.numpy(), t.numpy()) for s, t in shards.pairs_dataset([str(path)], 0, 0)]
    for pairs in (list(zip(*read)), streamed):
        assert [(s.tolist(), t.tolist()) for s, t in pairs] == [
            (s.tolist(), t.tolist()) for s, t in zip(sources, targets)]
    shards.check_shard(path, 3)
    with pytest.raises(DataError, match="damaged shard"):
        shards.check_shard(path, 4)


def test_the_encoding_is_the_same_with_one_process_or_two(tmp_path, monkeypatch):
    monkeypatch.setattr(shards, "PAIRS_PER_SHARD", 700)
    monkeypatch.setattr(shards, "LINES_PER_RANGE", 300)
    corpus = sorted_corpus(tmp_path / "corpus")
    recipe = recipe_for(corpus, max_len=9)
    made = {jobs: prepared.prepare_data(recipe, tmp_path / f"jobs{jobs}", jobs=jobs)
            for jobs in (1, 2)}
    one, two = made[1], made[2]
    assert len(one.shard_paths) == 5 and one.info["shards"] == two.info["shards"]
    for a, b in zip(one.shard_paths, two.shard_paths):
        assert a.read_bytes() == b.read_bytes()
    # Every kept pair is in exactly one shard, encoded as `encode_pairs` does.
    tokenizers = one.tokenizers()
    expected = sorted((tuple(s), tuple(t)) for s, t in batching.encode_pairs(
        [line.split("\t") for line in _pairs_as_tsv(corpus)], *tokenizers, 9))
    found = sorted((tuple(s.tolist()), tuple(t.tolist())) for path in one.shard_paths
                   for s, t in zip(*shards.read_shard(path)))
    assert found == expected and one.info["kept"] == len(expected) < 3000
    assert one.info["left_out"].startswith(f"{3000 - len(expected)} over data.max_len (9 tokens")


def _pairs_as_tsv(corpus):
    sources = (corpus / "train.src").read_text().splitlines()
    targets = (corpus / "train.tgt").read_text().splitlines()
    return [f"{s}\t{t}" for s, t in zip(sources, targets)]


def test_a_sorted_corpus_is_read_in_random_order_and_the_epoch_length_is_exact(tmp_path, tf,
                                                                             monkeypatch):
    monkeypatch.setattr(shards, "PAIRS_PER_SHARD", 500)
    corpus = sorted_corpus(tmp_path / "corpus")
    recipe = recipe_for(corpus)
    data = prepared.prepare_data(recipe, tmp_path / "prepared")
    # Each shard is a sample of the whole corpus, not a slice of its sorted order.
    means = [np.mean([len(s) for s in shards.read_shard(p)[0]]) for p in data.shard_paths]
    assert max(means) - min(means) < 0.6
    tf.random.set_seed(0)  # the shuffle joins its seed with the global one, which tests set
    lengths = [len(s) for s, _ in data.dataset(seed=3, shuffle_buffer=200).take(600)]
    assert abs(np.corrcoef(np.arange(600), lengths)[0, 1]) < 0.15
    for batch_tokens, width in ((0, 1), (120, 1), (0, 3)):
        plan = batching.bucket_plan(recipe.data.max_len, 16, batch_tokens, width)
        counted = sum(1 for _ in batching.bucketed_batches(data.dataset(1, 300), *plan))
        assert data.batches_per_epoch(*plan) == counted


def test_prepared_data_made_otherwise_or_damaged_is_refused_by_name(tmp_path):
    corpus = sorted_corpus(tmp_path / "corpus", count=400)
    recipe = recipe_for(corpus)
    data = prepared.prepare_data(recipe, tmp_path / "prepared")
    with pytest.raises(ConfigError, match="not empty"):
        prepared.prepare_data(recipe, tmp_path / "prepared")
    with pytest.raises(ConfigError, match=r"data.max_len is 12, but the prepared data .* made "
                       r"with 20"):
        data.check_matches(recipe_for(corpus, max_len=12))
    other = tmp_path / "other"
    shutil.copytree(data.root / "vocab", other / "vocab")
    data.check_vocabularies(other)
    with open(other / "vocab" / "tgt.words.txt", "a") as handle:
        handle.write("extra\n")
    with pytest.raises(ConfigError, match="other vocabularies"):
        data.check_vocabularies(other)
    shard = data.shard_paths[0]
    shard.write_bytes(shard.read_bytes()[:-4])
    with pytest.raises(DataError, match=f"{shard}: prepared data: damaged"):
        prepared.Prepared(data.root)
    shard.unlink()
    with pytest.raises(DataError, match=f"{shard}: prepared data: missing"):
        prepared.Prepared(data.root)
    (data.root / "manifest.json").unlink()
    with pytest.raises(DataError, match="did not finish"):
        prepared.Prepared(data.root)
    with pytest.raises(DataError, match="no such folder of prepared data"):
        prepared.Prepared(tmp_path / "nowhere")


def test_a_record_or_vocabularies_changed_with_the_manifest_are_named(tmp_path):
    """Edits that also rewrote the manifest (its check passes): the record still tells."""
    corpus = sorted_corpus(tmp_path / "corpus", count=400)
    data = prepared.prepare_data(recipe_for(corpus), tmp_path / "prepared")
    listed = ["vocab", prepared.SHARDS, prepared.INFO]
    vocab = data.root / "vocab" / "tgt.words.txt"
    vocab.write_text(vocab.read_text() + "extra\n")
    manifest.write(data.root, listed)
    with pytest.raises(DataError, match=f"{data.root / 'vocab'}: the vocabularies are not those"):
        prepared.Prepared(data.root)
    vocab.write_text(vocab.read_text().removesuffix("extra\n"))
    info = json.loads((data.root / prepared.INFO).read_text())
    del info["target_lengths"]
    (data.root / prepared.INFO).write_text(json.dumps(info))
    manifest.write(data.root, listed)
    with pytest.raises(DataError, match=r"prepared.json: damaged \(no target_lengths\)"):
        prepared.Prepared(data.root)


def test_processes_are_at_most_the_ranges_of_work_and_sampled_segmentations_prepare_nothing(
        tmp_path):
    corpus = sorted_corpus(tmp_path / "corpus", count=400)
    data = prepared.prepare_data(recipe_for(corpus), tmp_path / "prepared", jobs=100)
    assert json.loads((data.root / prepared.INFO).read_text())["processes"] == 1
    recipe = recipes.with_changes(recipe_for(corpus), "vocab", kind="sentencepiece",
                                  sampling_alpha=0.1)
    with pytest.raises(ConfigError, match="vocab.sampling_alpha .* nothing to prepare"):
        prepared.prepare_data(recipe, tmp_path / "sampled")
    assert not (tmp_path / "sampled").exists()


def test_a_misaligned_corpus_leaves_no_prepared_folder(tmp_path):
    corpus = sorted_corpus(tmp_path / "corpus", count=400)
    with open(corpus / "train.tgt", "a") as handle:
        handle.write("1 2 3\n")
    with pytest.raises(DataError, match="misaligned"):
        prepared.prepare_data(recipe_for(corpus), tmp_path / "prepared")
    assert not [p for p in tmp_path.iterdir() if "prepared" in p.name]


def test_the_record_says_what_was_read_and_kept(tmp_path):
    corpus = sorted_corpus(tmp_path / "corpus", count=400)
    (corpus / "train.src").write_text((corpus / "train.src").read_text().replace("\n", "\n\n", 1))
    (corpus / "train.tgt").write_text((corpus / "train.tgt").read_text().replace("\n", "\n\n", 1))
    data = prepared.prepare_data(recipe_for(corpus), tmp_path / "prepared")
    info = json.loads((data.root / prepared.INFO).read_text())
    assert info["lines_read"] == 401 and info["kept"] == 400
    assert info["left_out"] == "1 blank on one side or both (line 2)"
    assert sum(info["target_lengths"].values()) == 400 == sum(info["shards"])
    assert info["target_tokens"] == sum(int(k) * v for k, v in info["target_lengths"].items()) - 400


def test_a_run_killed_after_preparing_its_data_is_still_a_run_directory(tmp_path):
    from nmt.storage import rundir
    run = rundir.RunDir(tmp_path / "run")
    (run.prepared).mkdir(parents=True)
    (run.root / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a run directory"):
        rundir.refuse_foreign_folder(run)
    (run.prepared / prepared.INFO).write_text("{}")
    rundir.refuse_foreign_folder(run)
    # Killed while preparing (SIGKILL): the next `nmt train` removes the temporary folder.
    left = run.root / ".prepared.12345-abc.tmp"
    (left / "shards").mkdir(parents=True)
    rundir.repair(run, None)
    assert not left.exists() and run.prepared.is_dir()
    # A prepared folder is not a run directory: training into it would rewrite its manifest.
    with pytest.raises(ConfigError, match="holds prepared data .* choose another --run-dir"):
        rundir.refuse_foreign_folder(rundir.RunDir(run.prepared))
