import numpy as np

from nmt import data
from vocab import BOS, EOS, PAD, words


def tokenizers():
    tok = words.WordTokenizer.train(["a b c d e f g"], size=20)
    return tok, tok


def test_encode_pairs_adds_markers_and_drops_long_pairs():
    src, tgt = tokenizers()
    stats = data.CorpusStats()
    pairs = [("a b", "c"), ("a b c d", "e"), ("a", "b c d e")]
    out = list(data.encode_pairs(pairs, src, tgt, max_len=3, stats=stats))
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
    dataset = data.training_dataset(lambda: pairs, src, tgt, batch_size=16, max_len=10,
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
    sequences = [[5] * n for n in (4, 1, 3, 2, 5)]
    order = []
    for indices, batch in data.length_sorted_batches(sequences, batch_size=2):
        assert batch.shape == (len(indices), max(len(sequences[i]) for i in indices))
        for row, index in enumerate(indices):
            assert (batch[row] != PAD).sum() == len(sequences[index])
        order += indices
    assert sorted(order) == list(range(5)) and order == [1, 3, 2, 0, 4]
