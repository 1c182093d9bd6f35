"""Search: greedy and length-normalized beam search, and forced scoring of given targets.

Sees the model only through the inference protocol:

    memory, state = model.encode(source)                                 source: int [B, S]
    log_probs, state, attention = model.decode_step(token, state, memory)  token: int [B]

and `model(...)`-free forced scoring through `model.teacher_forced(source, target_in)`.

The score of a hypothesis y of T tokens (EOS included) is defined once, in `normalized_score`:

    score(y) = sum_t log p(y_t | y_<t, x) / penalty(T),   penalty = T^alpha | ((5+T)/6)^alpha

Both searches run whole in one `tf.function` (a `tf.while_loop` over steps, every hypothesis of the
batch in one tensor), so no Python runs per step. Every hypothesis must end with EOS: at its
sentence's length limit (ratio * source length + offset) only EOS may follow.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from nmt.config import DecodeConfig
from nmt.data import length_sorted_batches, pad_batch
from vocab import BOS, EOS, PAD


class Hypothesis(NamedTuple):
    ids: list  # target ids, EOS excluded
    log_prob: float  # sum of log p over the tokens and EOS
    score: float  # log_prob / penalty(len(ids) + 1)


def length_penalty(length, alpha, kind: str = "average"):
    """penalty(T): T^alpha ("average") or ((5+T)/6)^alpha ("gnmt", Wu et al. 2016)."""
    length = tf.cast(length, tf.float32)
    if kind == "gnmt":
        return tf.pow((5.0 + length) / 6.0, alpha)
    return tf.pow(length, alpha)


def normalized_score(log_prob, length, alpha, kind: str = "average"):
    """The one definition of a hypothesis score: sum log p / penalty(T)."""
    return log_prob / length_penalty(length, alpha, kind)


class Searcher:
    """Compiled search and scoring functions for one model, traced once per search setting.

    Args:
        model: anything with the inference protocol (`encode`, `decode_step`, `teacher_forced`).
        config: length limit and default beam size / alpha / penalty kind.
    """

    def __init__(self, model, config: DecodeConfig = DecodeConfig()):
        self.model, self.config = model, config
        self._compiled = {}

    # ---- public API: numpy in, Python out -----------------------------------------------------

    def greedy(self, source: np.ndarray, alpha: float | None = None) -> list[Hypothesis]:
        """The most probable token at each step, for a padded int batch [B, S]."""
        alpha = self.config.alpha if alpha is None else alpha
        fn = self._function("greedy")
        ids, log_probs, lengths = fn(tf.constant(source, tf.int32), self._max_lengths(source))
        scores = normalized_score(log_probs, lengths, alpha, self.config.length_penalty)
        return [Hypothesis(_strip(row), float(lp), float(s))
                for row, lp, s in zip(ids.numpy(), log_probs.numpy(), scores.numpy())]

    def beam(self, source: np.ndarray, beam_size: int | None = None, alpha: float | None = None,
             nbest: int = 1) -> list[list[Hypothesis]]:
        """The `nbest` best hypotheses of each sentence by normalized score, best first."""
        beam_size = beam_size or self.config.beam_size
        alpha = self.config.alpha if alpha is None else alpha
        if not 1 <= nbest <= beam_size:
            raise ValueError(f"nbest must be between 1 and the beam size ({beam_size})")
        fn = self._function("beam", beam_size, nbest)
        ids, log_probs, scores = fn(tf.constant(source, tf.int32), self._max_lengths(source),
                                    tf.constant(alpha, tf.float32))
        out = []
        for rows, lps, ss in zip(ids.numpy(), log_probs.numpy(), scores.numpy()):
            out.append([Hypothesis(_strip(r), float(lp), float(s))
                        for r, lp, s in zip(rows[:nbest], lps[:nbest], ss[:nbest])
                        if np.isfinite(s)])
        return out

    def score(self, source: np.ndarray, targets: Sequence[Sequence[int]],
              alpha: float | None = None):
        """Forced scoring of given target ids (EOS is appended), the search's own score.

        Returns (hypotheses with the given ids, attention [B] list of [T+1, S] arrays).
        """
        alpha = self.config.alpha if alpha is None else alpha
        target = pad_batch([[BOS] + list(t) + [EOS] for t in targets])
        fn = self._function("score")
        log_probs, weights = fn(tf.constant(source, tf.int32), tf.constant(target, tf.int32))
        lengths = np.array([len(t) + 1 for t in targets])
        scores = normalized_score(log_probs, lengths, alpha, self.config.length_penalty).numpy()
        hyps = [Hypothesis(list(t), float(lp), float(s))
                for t, lp, s in zip(targets, log_probs.numpy(), scores)]
        weights = weights.numpy()
        attention = [weights[i, :lengths[i], :] for i in range(len(targets))]
        return hyps, attention

    def max_length(self, source_length: int) -> int:
        """Output length limit (EOS included) for a source of `source_length` tokens."""
        return max(1, int(self.config.max_len_ratio * source_length) + self.config.max_len_offset)

    # ---- compiled graphs ----------------------------------------------------------------------

    def _max_lengths(self, source: np.ndarray):
        # The source ends with an EOS marker that is not a word of the sentence.
        lengths = np.maximum((np.asarray(source) != PAD).sum(axis=1) - 1, 1)
        return tf.constant([self.max_length(n) for n in lengths], tf.int32)

    def _function(self, kind: str, beam_size: int = 1, nbest: int = 1):
        key = (kind, beam_size, nbest)
        if key not in self._compiled:
            source = tf.TensorSpec([None, None], tf.int32)
            lengths = tf.TensorSpec([None], tf.int32)
            if kind == "greedy":
                fn = tf.function(self._greedy_graph, input_signature=[source, lengths])
            elif kind == "beam":
                fn = tf.function(lambda s, m, a: self._beam_graph(s, m, a, beam_size, nbest),
                                 input_signature=[source, lengths, tf.TensorSpec([], tf.float32)])
            else:
                fn = tf.function(self._score_graph, input_signature=[source, source])
            self._compiled[key] = fn
        return self._compiled[key]

    def _greedy_graph(self, source, max_lengths):
        batch = tf.shape(source)[0]
        limit = tf.reduce_max(max_lengths)
        memory, state = self.model.encode(source)
        tokens = tf.fill([batch], BOS)
        finished = tf.zeros([batch], tf.bool)
        log_prob = tf.zeros([batch])
        lengths = tf.zeros([batch], tf.int32)
        outputs = tf.TensorArray(tf.int32, size=0, dynamic_size=True)

        def body(t, tokens, state, finished, log_prob, lengths, outputs):
            step_log_probs, state, _ = self.model.decode_step(tokens, state, memory)
            step_log_probs = _restrict(step_log_probs, t >= max_lengths - 1)
            best = tf.argmax(step_log_probs, axis=-1, output_type=tf.int32)
            best_log_prob = tf.gather(step_log_probs, best, batch_dims=1)
            log_prob += tf.where(finished, 0.0, best_log_prob)
            lengths += tf.cast(~finished, tf.int32)
            best = tf.where(finished, PAD, best)
            finished |= tf.equal(best, EOS)
            return t + 1, best, state, finished, log_prob, lengths, outputs.write(t, best)

        _, _, _, _, log_prob, lengths, outputs = tf.while_loop(
            lambda t, tokens, state, finished, *_: (t < limit) & ~tf.reduce_all(finished), body,
            (tf.constant(0), tokens, state, finished, log_prob, lengths, outputs))
        return tf.transpose(outputs.stack()), log_prob, lengths

    def _beam_graph(self, source, max_lengths, alpha, beam_size, nbest):
        """Beam search in which finished hypotheses stay in the beam, frozen.

        A hypothesis that emitted EOS keeps its slot and score while it is among the `beam_size`
        best by normalized score, so beam 1 is exactly greedy. Every hypothesis that finishes also
        enters an archive of the best finished ones, which is the result. A sentence is done when
        its beam holds no open hypothesis, or when no open one can still beat the archive's
        `nbest`-th: log p only falls, so an open hypothesis scores at most
        log p / penalty(length limit).
        """
        kind = self.config.length_penalty
        k = beam_size
        batch = tf.shape(source)[0]
        limit = tf.reduce_max(max_lengths)
        memory, state = self.model.encode(source)
        tile = lambda t: tf.repeat(t, k, axis=0)  # noqa: E731  row b -> rows b*k .. b*k+k-1
        memory = tf.nest.map_structure(tile, memory)
        state = tf.nest.map_structure(tile, state)
        neg_inf = tf.constant(-np.inf, tf.float32)

        # Only the first slot is live at the start, so the first step does not pick k copies.
        alive_log_prob = tf.tile(tf.concat([[0.0], tf.fill([k - 1], neg_inf)], 0)[None], [batch, 1])
        alive_done = tf.zeros([batch, k], tf.bool)
        alive_len = tf.zeros([batch, k], tf.int32)
        alive_seq = tf.zeros([batch, k, limit], tf.int32)
        best_score = tf.fill([batch, k], neg_inf)
        best_log_prob = tf.fill([batch, k], neg_inf)
        best_seq = tf.zeros([batch, k, limit], tf.int32)
        tokens = tf.fill([batch * k], BOS)
        positions = tf.range(limit)
        limit_penalty = length_penalty(max_lengths, alpha, kind)[:, None]  # [B, 1]

        def body(t, tokens, state, alive_log_prob, alive_done, alive_len, alive_seq,
                 best_score, best_log_prob, best_seq, sentence_done):
            step_log_probs, state, _ = self.model.decode_step(tokens, state, memory)
            vocab = tf.shape(step_log_probs)[-1]
            at_limit = tf.repeat(t >= max_lengths - 1, k)
            step_log_probs = tf.reshape(_restrict(step_log_probs, at_limit),
                                        [batch, k, vocab])
            # Open hypotheses extend by every token; a finished one only by PAD, at no cost.
            only_pad = tf.where(tf.equal(tf.range(vocab), PAD), 0.0, neg_inf)
            extension = tf.where(alive_done[:, :, None], only_pad[None, None], step_log_probs)
            candidate_log_prob = alive_log_prob[:, :, None] + extension  # [B, k, V]
            candidate_len = tf.where(alive_done, alive_len, t + 1)  # [B, k]
            candidate_score = normalized_score(candidate_log_prob, candidate_len[:, :, None],
                                               alpha, kind)
            top_score, top_index = tf.math.top_k(tf.reshape(candidate_score, [batch, -1]), k)
            parent = top_index // vocab
            token = top_index % vocab
            was_done = tf.gather(alive_done, parent, batch_dims=1)
            alive_log_prob = tf.gather(tf.reshape(candidate_log_prob, [batch, -1]), top_index,
                                       batch_dims=1)
            alive_len = tf.gather(candidate_len, parent, batch_dims=1)
            alive_seq = tf.gather(alive_seq, parent, batch_dims=1)
            alive_seq = tf.where(tf.equal(positions, t)[None, None], token[:, :, None], alive_seq)
            newly_done = ~was_done & tf.equal(token, EOS) & tf.math.is_finite(top_score)
            alive_done = was_done | tf.equal(token, EOS)
            state = tf.nest.map_structure(
                lambda s: tf.gather(s, tf.reshape(parent + tf.range(batch)[:, None] * k, [-1])),
                state)

            # Archive: merge the hypotheses that just finished into the best finished ones.
            merged_score = tf.concat([best_score, tf.where(newly_done, top_score, neg_inf)], 1)
            merged_log_prob = tf.concat([best_log_prob, alive_log_prob], 1)
            merged_seq = tf.concat([best_seq, alive_seq], 1)
            best_score, keep = tf.math.top_k(merged_score, k)
            best_log_prob = tf.gather(merged_log_prob, keep, batch_dims=1)
            best_seq = tf.gather(merged_seq, keep, batch_dims=1)

            open_bound = tf.reduce_max(tf.where(alive_done, neg_inf, alive_log_prob), axis=1,
                                       keepdims=True) / limit_penalty
            cannot_improve = best_score[:, nbest - 1:nbest] >= open_bound
            sentence_done = tf.reduce_all(alive_done | cannot_improve, axis=1)
            tokens = tf.reshape(tf.where(alive_done, PAD, token), [-1])
            return (t + 1, tokens, state, alive_log_prob, alive_done, alive_len, alive_seq,
                    best_score, best_log_prob, best_seq, sentence_done)

        loop_vars = (tf.constant(0), tokens, state, alive_log_prob, alive_done, alive_len,
                     alive_seq, best_score, best_log_prob, best_seq, tf.zeros([batch], tf.bool))
        result = tf.while_loop(lambda t, *v: (t < limit) & ~tf.reduce_all(v[-1]), body, loop_vars)
        best_score, best_log_prob, best_seq = result[7], result[8], result[9]
        return best_seq, best_log_prob, best_score

    def _score_graph(self, source, target):
        """Sum of log p of target[:, 1:] given target[:, :-1], and the attention weights."""
        target_in, target_out = target[:, :-1], target[:, 1:]
        logits, weights = self.model.teacher_forced(source, target_in)
        log_probs = tf.nn.log_softmax(logits, axis=-1)
        token_log_probs = tf.gather(log_probs, target_out, batch_dims=2)
        mask = tf.cast(tf.not_equal(target_out, PAD), tf.float32)
        return tf.reduce_sum(token_log_probs * mask, axis=1), weights


def search_all(searcher: Searcher, sources: Sequence[Sequence[int]], batch_size: int,
               beam_size: int = 1, alpha: float | None = None, nbest: int = 1
               ) -> list[list[Hypothesis]]:
    """n-best lists for many source id sequences, decoded in length-sorted batches, input order.

    Beam size 1 runs the greedy graph, which returns the same hypotheses faster.
    """
    results: list = [None] * len(sources)
    for indices, batch in length_sorted_batches(sources, batch_size):
        if beam_size == 1 and nbest == 1:
            found = [[h] for h in searcher.greedy(batch, alpha)]
        else:
            found = searcher.beam(batch, beam_size, alpha, nbest)
        for index, hyps in zip(indices, found):
            results[index] = hyps
    return results


def score_all(searcher: Searcher, sources: Sequence[Sequence[int]],
              targets: Sequence[Sequence[int]], batch_size: int, alpha: float | None = None):
    """Forced scores and attention of many (source, target) pairs, in length-sorted batches.

    Returns (hypotheses, attention matrices [T+1, S+1]) in input order.
    """
    hyps: list = [None] * len(sources)
    attention: list = [None] * len(sources)
    for indices, batch in length_sorted_batches(sources, batch_size):
        scored, weights = searcher.score(batch, [targets[i] for i in indices], alpha)
        for index, hyp, matrix in zip(indices, scored, weights):
            hyps[index], attention[index] = hyp, matrix[:, :len(sources[index])]
    return hyps, attention


def _restrict(log_probs, at_limit):
    """Search never emits PAD or BOS; rows at their length limit may only emit EOS.

    Masked tokens get -inf; the others keep their own log-probs (no renormalization), so a
    hypothesis's score is the same as its forced score.
    """
    vocab = tf.range(tf.shape(log_probs)[-1])
    never = tf.where(tf.equal(vocab, PAD) | tf.equal(vocab, BOS), -np.inf, 0.0)
    eos_only = tf.where(tf.equal(vocab, EOS), 0.0, -np.inf)
    return log_probs + tf.where(at_limit[:, None], eos_only[None], never[None])


def _strip(row) -> list:
    """Ids up to (not including) the first EOS."""
    out = []
    for index in row:
        if index in (EOS, PAD):
            break
        out.append(int(index))
    return out
