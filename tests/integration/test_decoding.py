import itertools
import math
from dataclasses import replace

import numpy as np
import pytest

from nmt.config.options import DecodeConfig
from nmt.search import rules
from tests.helpers import SHORT_OR_LONG, A, B, C, ScriptedModel, random_seq2seq, random_sources
from vocab import BOS, EOS, PAD, UNK


def searcher(model, **decode):
    """A Searcher of `model`, and the settings its calls take (DecodeConfig fields)."""
    from nmt.search.decoding import Searcher
    return Searcher(model), DecodeConfig(**decode)


def beam3(model, **decode):
    search, decode = searcher(model, **decode)
    return search.beam(SOURCE, replace(decode, beam_size=3))[0]


SOURCE = np.array([[A, B, C, EOS]], np.int32)  # 3 source words -> limit 2*3+10 = 16 tokens


def test_greedy_follows_argmax(tf):
    model = ScriptedModel({BOS: {A: 0.6, B: 0.4}, A: {C: 0.5, EOS: 0.2, B: 0.3},
                           C: {EOS: 0.9, A: 0.1}})
    search, decode = searcher(model)
    hyp = search.greedy(SOURCE, decode)[0]
    assert hyp.ids == [A, C]
    assert hyp.log_prob == pytest.approx(math.log(0.6) + math.log(0.5) + math.log(0.9), abs=1e-5)


def test_alpha_changes_the_winner_as_computed_by_hand(tf):
    model = ScriptedModel(SHORT_OR_LONG)
    empty = math.log(0.55)  # T = 1
    one = math.log(0.45) + math.log(0.7)  # T = 2
    assert empty > one and empty < one / 2  # alpha 0 prefers "", alpha 1 prefers "A"
    best = beam3(model, alpha=0.0)[0]
    assert best.ids == [] and best.score == pytest.approx(empty, abs=1e-5)
    best = beam3(model, alpha=1.0)[0]
    assert best.ids == [A] and best.score == pytest.approx(one / 2, abs=1e-5)
    gnmt = beam3(model, alpha=1.0, length_penalty="gnmt")
    assert gnmt[0].score == pytest.approx(max(empty / 1.0, one / (7 / 6)), abs=1e-5)


def test_beam_one_is_greedy_even_with_normalization(tf):
    model = ScriptedModel(SHORT_OR_LONG)
    for alpha in (0.0, 1.0, 2.0):
        search, decode = searcher(model, alpha=alpha)
        greedy = search.greedy(SOURCE, decode)[0]
        assert search.beam(SOURCE, replace(decode, beam_size=1))[0][0] == greedy


def test_nbest_sorted_distinct_and_frozen_after_eos(tf):
    model = ScriptedModel(SHORT_OR_LONG)
    search, decode = searcher(model, alpha=1.0)
    nbest = search.beam(SOURCE, replace(decode, beam_size=3), nbest=3)[0]
    assert [h.ids for h in nbest] == [[A], [], [A, B]]
    scores = [h.score for h in nbest]
    assert scores == sorted(scores, reverse=True)
    # Nothing was added after EOS: each log-prob is exactly its tokens' and EOS's.
    assert nbest[2].log_prob == pytest.approx(math.log(0.45 * 0.3 * 1.0), abs=1e-5)


def test_length_limit_forces_eos(tf):
    model = ScriptedModel({BOS: {A: 1.0}, A: {A: 0.99, EOS: 0.01}})
    search, decode = searcher(model, max_len_ratio=1.0, max_len_offset=2)
    limit = rules.max_length(3, decode)
    for hyp in (search.greedy(SOURCE, decode)[0],
                search.beam(SOURCE, replace(decode, beam_size=4))[0][0]):
        assert hyp.ids == [A] * (limit - 1)
        expected = math.log(0.99) * (limit - 2) + math.log(0.01)
        assert hyp.log_prob == pytest.approx(expected, abs=1e-4)


class CountingModel(ScriptedModel):
    """The scripted model, counting the hypothesis rows its decode steps compute."""

    def __init__(self, table: dict):
        super().__init__(table)
        self.rows = self.tf.Variable(0)

    def decode_step(self, token, state, memory, tables, rows_per_memory=1):
        self.rows.assign_add(self.tf.shape(token)[0])
        return super().decode_step(token, state, memory, tables, rows_per_memory)


def test_sentences_leave_the_batch_when_they_end(tf):
    # Never stopping of its own accord, each sentence runs to its length limit: 3 and 7 tokens.
    model = CountingModel({BOS: {A: 1.0}, A: {A: 0.99, EOS: 0.01}})
    search, decode = searcher(model, max_len_ratio=1.0, max_len_offset=2)
    sources = np.array([[A, EOS, PAD, PAD, PAD, PAD], [A, B, C, A, B, EOS]], np.int32)
    limits = [rules.max_length(1, decode), rules.max_length(5, decode)]
    assert limits == [3, 7]
    for beam_size, run in ((1, lambda s: [[h] for h in search.greedy(s, decode)]),
                           (2, lambda s: search.beam(s, replace(decode, beam_size=2)))):
        alone = [run(sources[i:i + 1, :2 + 4 * i])[0] for i in range(2)]
        model.rows.assign(0)
        together = run(sources)
        # Rows computed: each sentence's own steps only, not the longest sentence's for both,
        # and open hypotheses only. With beam 2, the first step starts from BOS alone; the second
        # extends "A" and an improbable token; from then on the other slot holds "A .. EOS",
        # frozen, so only "A A .." is computed: n + 1 rows for a limit of n.
        open_rows = sum(limits) if beam_size == 1 else sum(n + 1 for n in limits)
        assert int(model.rows.numpy()) == open_rows
        assert [hyps[0].ids for hyps in together] == [hyps[0].ids for hyps in alone]
        assert [len(hyps[0].ids) + 1 for hyps in together] == limits


def test_scores_agree_with_forced_scoring(tf):
    model = ScriptedModel(SHORT_OR_LONG)
    search, decode = searcher(model, alpha=1.0)
    nbest = search.beam(SOURCE, replace(decode, beam_size=3), nbest=3)[0]
    forced, attention = search.score(np.repeat(SOURCE, 3, axis=0), [h.ids for h in nbest],
                                     decode)
    for hyp, again in zip(nbest, forced):
        assert again.score == pytest.approx(hyp.score, abs=1e-5)
    assert attention[2].shape == (3, 4)  # A, B, EOS over 4 source positions


# ---- a real (tiny, random) model ------------------------------------------------------------------

@pytest.fixture(scope="module")
def random_model(tf):
    return random_seq2seq(7)


def test_exhaustive_optimum_with_a_beam_as_wide_as_the_search_space(tf, random_model):
    search, decode = searcher(random_model, alpha=1.0, max_len_ratio=1.0, max_len_offset=1)
    alphabet = [UNK, A, B, C]  # every token search may emit, EOS aside
    for row in random_sources(4, seed=1):
        source = row[None, :]
        words = int((row != PAD).sum()) - 1
        limit = rules.max_length(words, decode)
        candidates = [list(seq) for n in range(limit) for seq in itertools.product(alphabet,
                                                                                   repeat=n)]
        scored, _ = search.score(np.repeat(source, len(candidates), axis=0), candidates, decode)
        optimum = max(scored, key=lambda h: h.score)
        found = search.beam(source, replace(decode, beam_size=len(candidates)))[0][0]
        assert found.ids == optimum.ids
        assert found.score == pytest.approx(optimum.score, abs=1e-4)


def test_wider_beams_never_score_lower(tf, rough_model):
    """Not a theorem of beam search (a wider beam can drop the prefix a narrower one kept), so
    this checks it where it matters, on a trained model, over sentences where widths disagree."""
    from nmt.data.batching import pad_batch
    model, sources = rough_model
    search, decode = searcher(model, alpha=1.0)
    found = {beam: np.array([h[0].score for h in search.beam(pad_batch(sources),
                                                             replace(decode, beam_size=beam))])
             for beam in (1, 2, 3, 5, 8)}
    assert np.any(found[8] > found[1] + 1e-3)  # the widths do find different hypotheses
    for narrow, wide in zip((1, 2, 3, 5), (2, 3, 5, 8)):
        assert np.all(found[wide] >= found[narrow] - 1e-5)


@pytest.mark.parametrize("beam", [1, 4])
def test_batched_equals_one_at_a_time_and_padding_changes_nothing(tf, random_model, beam):
    search, decode = searcher(random_model, alpha=1.0)
    sources = random_sources(6, seed=3)
    decode = replace(decode, beam_size=beam)
    batched = search.beam(sources, decode, nbest=beam)
    padded = search.beam(np.pad(sources, ((0, 0), (0, 4))), decode, nbest=beam)
    for row, hyps in enumerate(batched):
        alone = search.beam(sources[row:row + 1, :int((sources[row] != PAD).sum())],
                            decode, nbest=beam)[0]
        for group in (alone, padded[row]):
            assert [h.ids for h in group] == [h.ids for h in hyps]
            np.testing.assert_allclose([h.score for h in group], [h.score for h in hyps],
                                       atol=1e-5)


def test_a_sentence_ending_at_the_first_step_leaves_the_others_unchanged(tf, random_model):
    # Length limit = source words: the one-word sentence may only emit EOS, at the first step.
    search, decode = searcher(random_model, alpha=1.0, max_len_ratio=1.0, max_len_offset=0)
    sources = np.array([[5, EOS, PAD, PAD, PAD], [6, 7, 8, 9, EOS], [10, 11, 4, EOS, PAD]],
                       np.int32)
    batched = search.beam(sources, replace(decode, beam_size=3), nbest=2)
    assert [h.ids for h in batched[0]] == [[]]  # one hypothesis exists: EOS alone
    forced, _ = search.score(sources[:1, :2], [[]], decode)
    assert batched[0][0].log_prob == pytest.approx(forced[0].log_prob, abs=1e-5)
    for row in (1, 2):
        alone = search.beam(sources[row:row + 1], replace(decode, beam_size=3), nbest=2)[0]
        assert [h.ids for h in batched[row]] == [h.ids for h in alone]
        assert all(len(h.ids) < rules.max_length(5 - row, decode) for h in alone)


def test_every_nbest_score_is_its_forced_score(tf, random_model):
    # Hypotheses that end early stay frozen while the others go on, computed apart from them:
    # each of the n-best must still carry exactly its own forced score.
    search, decode = searcher(random_model, alpha=1.0)
    sources = random_sources(6, seed=4)
    found = search.beam(sources, replace(decode, beam_size=4), nbest=4)
    lengths = {len(h.ids) for hyps in found for h in hyps}
    assert len(lengths) > 2  # hypotheses of several lengths: some were frozen before others
    for row, hyps in zip(sources, found):
        forced, _ = search.score(np.repeat(row[None, :], len(hyps), axis=0), [h.ids for h in hyps],
                                 decode)
        np.testing.assert_allclose([h.score for h in hyps], [f.score for f in forced], atol=1e-5)
        np.testing.assert_allclose([h.log_prob for h in hyps], [f.log_prob for f in forced],
                                   atol=1e-5)


def test_refresh_takes_up_new_weights(tf):
    # The searcher's step tables derive from the weights; training changes them between dev
    # decodes, and `refresh` (called by the dev-BLEU callback) must make search follow.
    import keras

    from nmt.config.options import ModelConfig
    from nmt.model.seq2seq import Seq2Seq
    keras.utils.set_random_seed(11)
    model = Seq2Seq(ModelConfig(embedding_dim=8, encoder_units=6, encoder_layers=1,
                                decoder_units=10, attention_units=7, dropout=0.0), 12, 7)
    search, decode = searcher(model, alpha=0.0)
    sources = random_sources(4, seed=5)
    embedding = model.decoder.embedding.embeddings
    embedding.assign(embedding * 4.0 + 0.5)

    search.refresh()
    two = replace(decode, beam_size=2)
    found = [h[0] for h in search.beam(sources, two)]
    forced, _ = search.score(sources, [h.ids for h in found], decode)
    np.testing.assert_allclose([h.score for h in found], [f.score for f in forced], atol=1e-5)
    fresh = [h[0] for h in searcher(model, alpha=0.0)[0].beam(sources, two)]
    assert [h.ids for h in found] == [h.ids for h in fresh]


def test_search_all_keeps_input_order(tf, random_model):
    from nmt.search.decoding import search_all
    search, decode = searcher(random_model, alpha=1.0)
    sources = [[4, 5, 6, 7, 8, EOS], [9, EOS], [10, 11, EOS]]
    found = search_all(search, sources, replace(decode, batch_size=2, beam_size=2))
    for source, hyps in zip(sources, found):
        alone = search.beam(np.array([source], np.int32), replace(decode, beam_size=2))[0]
        assert hyps[0].ids == alone[0].ids


def test_blockwise_top_k_equals_tf_top_k_ties_included(tf):
    from nmt.search.decoding import top_k
    rng = np.random.default_rng(3)
    # Blocks cut in place (7931 = 103 * 77, 1000 = 20 * 50) and padded (7, 130, 997 prime; any
    # width when the shape is unknown at tracing).
    unknown_width = tf.function(top_k, input_signature=[tf.TensorSpec([None, None], tf.float32),
                                                        tf.TensorSpec([], tf.int32)])
    cases = itertools.product(((7, 1), (7, 5), (130, 3), (200, 10), (64, 64), (1000, 5),
                               (997, 5), (7931, 7)), (4, 300))
    for (width, k), distinct in cases:
        # Few distinct values, some -inf: ties within and across blocks, maxima in any order.
        values = rng.integers(0, distinct, size=(6, width)).astype(np.float32)
        values[values == 0] = -np.inf
        expected = tf.math.top_k(values, k)
        found = top_k(tf.constant(values), k)
        np.testing.assert_array_equal(found[0].numpy(), expected[0].numpy())
        np.testing.assert_array_equal(found[1].numpy(), expected[1].numpy())
        traced = unknown_width(tf.constant(values), tf.constant(k))
        np.testing.assert_array_equal(traced[0].numpy(), expected[0].numpy())
        np.testing.assert_array_equal(traced[1].numpy(), expected[1].numpy())


def test_top_k_blocks_divide_the_vocabulary_where_they_can():
    from nmt.search.decoding import _block_width
    assert [_block_width(v) for v in (7931, 8000, 4000, 6000, 1000, 997, None)] == [
        77, 64, 50, 60, 50, 64, 64]
