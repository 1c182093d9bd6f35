import numpy as np

from nmt.data import batching
from vocab import BOS, EOS, PAD, words


def tokenizers():
    tok = words.WordTokenizer.train(["a b c d e f g"], size=20)
    return tok, tok


def test_encode_pairs_adds_markers_and_drops_long_pairs():
    src, tgt = tokenizers()
    stats = batching.CorpusStats()
    pairs = [("a b", "c"), ("a b c d", "e"), ("a", "b c d e")]
    out = list(batching.encode_pairs(pairs, src, tgt, max_len=3, stats=stats))
    assert len(out) == 1
    source, target = out[0]
    assert source.tolist() == src.encode("a b") + [EOS]
    assert target.tolist() == [BOS] + tgt.encode("c") + [EOS]
    assert (stats.pairs, stats.kept, stats.dropped_too_long, stats.target_tokens) == (3, 1, 2, 2)


def test_training_batches_shift_targets_and_lose_nothing(tf):
    src, tgt = tokenizers()
    letters = "a b c d e f g".split()
    rng = np.random.default_rng(0)
    pairs = [(" ".join(rng.choice(letters, rng.integers(1, 6))),
              " ".join(rng.choice(letters, rng.integers(1, 6)))) for _ in range(300)]
    dataset = batching.training_dataset(lambda: pairs, src, tgt, batch_size=16, max_len=10,
                                        shuffle_buffer=50, seed=1)
    seen = []
    for inputs, target_out in dataset:
        source, target_in = inputs["source"].numpy(), inputs["target_in"].numpy()
        target_out = target_out.numpy()
        assert source.shape[0] == target_in.shape[0] == target_out.shape[0] <= 16
        assert np.all(target_in[:, 0] == BOS)
        lengths = (target_out != PAD).sum(axis=1)
        assert len(set(lengths)) == 1  # one target length per batch: no target padding
        for row, n in enumerate(lengths):
            assert target_out[row, n - 1] == EOS
            np.testing.assert_array_equal(target_in[row, 1:n], target_out[row, :n - 1])
        for row in range(source.shape[0]):
            src_ids = [i for i in source[row] if i != PAD]
            tgt_ids = [i for i in target_out[row] if i != PAD][:-1]
            seen.append((src.decode(src_ids), tgt.decode(tgt_ids)))
    assert sorted(seen) == sorted(pairs)


def test_length_sorted_batches_return_indices_for_the_original_order():
    from nmt.search import rules
    sequences = [[5] * n for n in (4, 1, 3, 2, 5)]
    order = []
    for indices, batch in rules.length_sorted_batches(sequences, batch_size=2):
        assert batch.shape == (len(indices), max(len(sequences[i]) for i in indices))
        for row, index in enumerate(indices):
            assert (batch[row] != PAD).sum() == len(sequences[index])
        order += indices
    assert sorted(order) == list(range(5)) and order == [1, 3, 2, 0, 4]


def test_bucket_batch_sizes_fill_a_token_budget():
    boundaries = list(range(3, 12))  # buckets of target lengths 2, 3, ..., 10 and >= 11
    assert batching.bucket_batch_sizes(boundaries, 16) == [16] * 10
    sizes = batching.bucket_batch_sizes(boundaries, 16, batch_tokens=20)
    # target_out tokens per sentence: 1, 2, ..., 9 and 10 (the longest kept)
    assert sizes == [20, 10, 6, 5, 4, 3, 2, 2, 2, 2]
    assert batching.bucket_batch_sizes(boundaries, 16, batch_tokens=4)[-1] == 1  # never empty


def test_token_batches_respect_the_budget_and_use_every_pair_once(tf):
    src, tgt = tokenizers()
    letters = "a b c d e f g".split()
    rng = np.random.default_rng(1)
    pairs = [(" ".join(rng.choice(letters, rng.integers(1, 8))),
              " ".join(rng.choice(letters, rng.integers(1, 12)))) for _ in range(400)]
    for epoch in range(2):  # read again each epoch: every pair once per epoch
        dataset = batching.training_dataset(lambda: pairs, src, tgt, batch_size=16, max_len=12,
                                            shuffle_buffer=100, seed=epoch, batch_tokens=24)
        seen, sizes = [], {}
        for inputs, target_out in dataset:
            target_out = target_out.numpy()
            lengths = set((target_out != PAD).sum(axis=1))
            assert (target_out != PAD).sum() <= 24 and len(lengths) == 1
            sizes.setdefault(lengths.pop(), []).append(target_out.shape[0])
            for row in range(target_out.shape[0]):
                src_ids = [i for i in inputs["source"].numpy()[row] if i != PAD]
                seen.append((src.decode(src_ids),
                             tgt.decode([i for i in target_out[row] if i != PAD][:-1])))
        assert sorted(seen) == sorted(pairs)
        # Full batches: 12 sentences of 1 token + EOS ... 2 of 11 + EOS; one partial per length.
        for length, counts in sizes.items():
            assert sorted(counts)[1:] == [24 // length] * (len(counts) - 1), (length, counts)
        assert set(sizes) == set(range(2, 13))


def test_wider_buckets_mix_target_lengths():
    assert batching.bucket_boundaries(6) == [3, 4, 5, 6, 7]  # lengths 2..6, one bucket each
    assert batching.bucket_boundaries(6, 2) == [4, 6, 7]  # {2, 3}, {4, 5}, {6}
    assert batching.bucket_boundaries(6, 100) == [7]  # one bucket: random batches


def test_a_bucket_as_wide_as_the_longest_target_gives_mixed_batches(tf):
    src, tgt = tokenizers()
    letters = "a b c d e f g".split()
    rng = np.random.default_rng(3)
    pairs = [(" ".join(rng.choice(letters, rng.integers(1, 6))),
              " ".join(rng.choice(letters, rng.integers(1, 9)))) for _ in range(200)]
    dataset = batching.training_dataset(lambda: pairs, src, tgt, batch_size=16, max_len=10,
                                        shuffle_buffer=200, seed=1, bucket_width=100)
    batches = [target_out.numpy() for _, target_out in dataset]
    assert [len(b) for b in batches] == [16] * 12 + [8]
    mixed = [len(set((b != PAD).sum(axis=1))) for b in batches]
    assert max(mixed) > 4  # many target lengths in a batch, padded
    assert sum(len(b) for b in batches) == len(pairs)
