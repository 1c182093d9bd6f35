"""Search: greedy and length-normalized beam search, and forced scoring of given targets.

Sees the model only through the inference protocol:

    tables = model.step_tables()                  weight-derived constants, once per weights
    memory, state = model.encode(source)                                         source: int [B, S]
    log_probs, state, attention = model.decode_step(token, state, memory, tables)  token: int [B]

and `model(...)`-free forced scoring through `model.teacher_forced(source, target_in)`.

The score of a hypothesis y of T tokens (EOS included) is defined once, in `normalized_score`:

    score(y) = sum_t log p(y_t | y_<t, x) / penalty(T),   penalty = T^alpha | ((5+T)/6)^alpha

Both searches run whole in one `tf.function` (a `tf.while_loop` over steps, every hypothesis of the
batch in one tensor), so no Python runs per step; sentences leave the batch as they end, so the
steps of a batch's longest sentence compute for it alone. Every hypothesis must end with EOS: at its
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
        model: anything with the inference protocol (`step_tables`, `encode`, `decode_step`,
            `teacher_forced`).
        config: length limit and default beam size / alpha / penalty kind.

    The model's step tables are computed here, from the weights of the moment: call `refresh`
    after the weights change (as during training), or searches use the old ones.
    """

    def __init__(self, model, config: DecodeConfig = DecodeConfig()):
        self.model, self.config = model, config
        self._compiled = {}
        self.refresh()

    def refresh(self) -> None:
        """Recomputes the step tables from the model's current weights."""
        self.tables = self.model.step_tables()

    # ---- public API: numpy in, Python out -----------------------------------------------------

    def greedy(self, source: np.ndarray, alpha: float | None = None) -> list[Hypothesis]:
        """The most probable token at each step, for a padded int batch [B, S]."""
        alpha = self.config.alpha if alpha is None else alpha
        fn = self._function("greedy")
        ids, log_probs, lengths = fn(tf.constant(source, tf.int32), self._max_lengths(source),
                                     self.tables)
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
                                    tf.constant(alpha, tf.float32), self.tables)
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
            tables = tf.nest.map_structure(tf.TensorSpec.from_tensor, self.tables)
            if kind == "greedy":
                fn = tf.function(self._greedy_graph, input_signature=[source, lengths, tables])
            elif kind == "beam":
                fn = tf.function(lambda s, m, a, t: self._beam_graph(s, m, a, t, beam_size, nbest),
                                 input_signature=[source, lengths, tf.TensorSpec([], tf.float32),
                                                  tables])
            else:
                fn = tf.function(self._score_graph, input_signature=[source, source])
            self._compiled[key] = fn
        return self._compiled[key]

    def _greedy_graph(self, source, max_lengths, tables):
        """The most probable token at each step; a sentence leaves the batch when it ends."""
        batch = tf.shape(source)[0]
        memory, state = self.model.encode(source)
        # Per-row values of the sentences still decoding, all gathered together as rows finish.
        active = {"row": tf.range(batch), "token": tf.fill([batch], BOS), "state": state,
                  "memory": memory, "max_length": max_lengths, "log_prob": tf.zeros([batch])}
        log_prob = tf.zeros([batch])
        lengths = tf.zeros([batch], tf.int32)
        outputs = tf.TensorArray(tf.int32, size=0, dynamic_size=True)

        def body(t, active, log_prob, lengths, outputs):
            step_log_probs, state, _ = self.model.decode_step(active["token"], active["state"],
                                                              active["memory"], tables)
            best_log_prob, best = _best_tokens(step_log_probs, t >= active["max_length"] - 1, 1)
            best, row = best[:, 0], active["row"][:, None]
            active = {**active, "token": best, "state": state,
                      "log_prob": active["log_prob"] + best_log_prob[:, 0]}
            outputs = outputs.write(t, tf.scatter_nd(row, best, [batch]))  # PAD where ended
            log_prob = tf.tensor_scatter_nd_update(log_prob, row, active["log_prob"])
            lengths = tf.tensor_scatter_nd_update(lengths, row, tf.fill(tf.shape(best), t + 1))
            active, _ = _drop_finished(tf.equal(best, EOS), active)
            return t + 1, active, log_prob, lengths, outputs

        _, _, log_prob, lengths, outputs = tf.while_loop(
            lambda t, active, *_: tf.size(active["row"]) > 0, body,
            (tf.constant(0), active, log_prob, lengths, outputs))
        return tf.transpose(outputs.stack()), log_prob, lengths

    def _beam_graph(self, source, max_lengths, alpha, tables, beam_size, nbest):
        """Beam search in which finished hypotheses stay in the beam, frozen.

        A hypothesis that emitted EOS keeps its slot and score while it is among the `beam_size`
        best by normalized score, so beam 1 is exactly greedy. Every hypothesis that finishes also
        enters an archive of the best finished ones, which is the result. A sentence is done when
        its beam holds no open hypothesis, or when no open one can still beat the archive's
        `nbest`-th: log p only falls, so an open hypothesis scores at most
        log p / penalty(length limit). Done sentences leave the batch.
        """
        kind = self.config.length_penalty
        k = beam_size
        batch = tf.shape(source)[0]
        limit = tf.reduce_max(max_lengths)
        memory, state = self.model.encode(source)
        neg_inf = tf.constant(-np.inf, tf.float32)
        # A finished hypothesis extends by PAD alone, at no cost: one live slot of its k.
        first_only = tf.concat([[0.0], tf.fill([k - 1], neg_inf)], 0)
        # Per sentence still searching: r open-or-frozen hypotheses ("alive_*", [b, r, ...]) and
        # the k best finished ones ("best_*", [b, k, ...]); per hypothesis row, [b * r, ...].
        # The first step starts from one hypothesis (BOS) per sentence, r = 1; every later step
        # from the k it chose.
        sentences = {
            "index": tf.range(batch), "max_length": max_lengths,
            "limit_penalty": length_penalty(max_lengths, alpha, kind)[:, None],
            "alive_log_prob": tf.zeros([batch, 1]),
            "alive_done": tf.zeros([batch, 1], tf.bool),
            "alive_len": tf.zeros([batch, 1], tf.int32),
            "alive_seq": tf.zeros([batch, 1, limit], tf.int32),
            "best_score": tf.fill([batch, k], neg_inf),
            "best_log_prob": tf.fill([batch, k], neg_inf),
            "best_seq": tf.zeros([batch, k, limit], tf.int32)}
        rows = {"token": tf.fill([batch], BOS), "state": state, "memory": memory}
        archive = {key: sentences[key] for key in ("best_score", "best_log_prob", "best_seq")}
        positions = tf.range(limit)

        def step(t, sentences, rows, archive, first=False):
            s = dict(sentences)
            b = tf.shape(s["index"])[0]
            r = 1 if first else k  # hypotheses per sentence going into this step
            # The k best extensions of each hypothesis hold the k best of the sentence.
            at_limit = tf.repeat(t >= s["max_length"] - 1, r)
            top_log_prob, top_token, state = self._extend_open(
                rows, tables, at_limit, tf.reshape(s["alive_done"], [-1]), k)
            top_log_prob, top_token = (tf.reshape(x, [b, r, k]) for x in (top_log_prob, top_token))
            # Open hypotheses extend by their best tokens; a finished one only by PAD, at no cost.
            done = s["alive_done"][:, :, None]
            top_log_prob = tf.where(done, first_only[None, None], top_log_prob)
            top_token = tf.where(done, PAD, top_token)
            candidate_log_prob = tf.reshape(s["alive_log_prob"][:, :, None] + top_log_prob,
                                            [b, r * k])
            candidate_len = tf.where(s["alive_done"], s["alive_len"], t + 1)  # [b, r]
            candidate_score = normalized_score(candidate_log_prob,
                                               tf.repeat(candidate_len, k, axis=1), alpha, kind)
            top_score, top_index = tf.math.top_k(candidate_score, k)
            parent = top_index // k
            token = tf.gather(tf.reshape(top_token, [b, r * k]), top_index, batch_dims=1)
            was_done = tf.gather(s["alive_done"], parent, batch_dims=1)
            s["alive_log_prob"] = tf.gather(candidate_log_prob, top_index, batch_dims=1)
            s["alive_len"] = tf.gather(candidate_len, parent, batch_dims=1)
            alive_seq = tf.gather(s["alive_seq"], parent, batch_dims=1)
            s["alive_seq"] = tf.where(tf.equal(positions, t)[None, None], token[:, :, None],
                                      alive_seq)
            newly_done = ~was_done & tf.equal(token, EOS) & tf.math.is_finite(top_score)
            s["alive_done"] = was_done | tf.equal(token, EOS)
            parent_rows = tf.reshape(parent + tf.range(b)[:, None] * r, [-1])
            rows = {"token": tf.reshape(tf.where(s["alive_done"], PAD, token), [-1]),
                    "state": _take(state, parent_rows),
                    # The memory of a sentence is the same for all its rows: copied once, here.
                    "memory": rows["memory"] if not first else tf.nest.map_structure(
                        lambda x: tf.repeat(x, k, axis=0), rows["memory"])}

            # Archive: merge the hypotheses that just finished into the best finished ones.
            merged_score = tf.concat([s["best_score"], tf.where(newly_done, top_score, neg_inf)],
                                     1)
            merged_log_prob = tf.concat([s["best_log_prob"], s["alive_log_prob"]], 1)
            merged_seq = tf.concat([s["best_seq"], s["alive_seq"]], 1)
            s["best_score"], keep = tf.math.top_k(merged_score, k)
            s["best_log_prob"] = tf.gather(merged_log_prob, keep, batch_dims=1)
            s["best_seq"] = tf.gather(merged_seq, keep, batch_dims=1)
            archive = {key: tf.tensor_scatter_nd_update(value, s["index"][:, None], s[key])
                       for key, value in archive.items()}

            open_bound = tf.reduce_max(tf.where(s["alive_done"], neg_inf, s["alive_log_prob"]),
                                       axis=1, keepdims=True) / s["limit_penalty"]
            cannot_improve = s["best_score"][:, nbest - 1:nbest] >= open_bound
            sentence_done = tf.reduce_all(s["alive_done"] | cannot_improve, axis=1)
            s, rows = _drop_finished(sentence_done, s, rows, rows_per_item=k)
            return t + 1, s, rows, archive

        after_first = step(tf.constant(0), sentences, rows, archive, first=True)
        _, _, _, archive = tf.while_loop(
            lambda t, sentences, *_: (t < limit) & (tf.size(sentences["index"]) > 0), step,
            after_first)
        return archive["best_seq"], archive["best_log_prob"], archive["best_score"]

    def _extend_open(self, rows, tables, at_limit, frozen, k: int):
        """The k best next tokens and the new state of every hypothesis row that is not frozen.

        A frozen (finished) row extends by PAD alone, so once some rows are frozen the model runs
        on the others only; frozen rows get zeros: the caller replaces their tokens, and their
        state is never read again (their descendants are frozen too). Gathering the open rows'
        memory costs a few percent of a step per row: measured on ja-en beam 5, this is 3 % faster
        at alpha 0 (3 % of rows frozen) and 6 % at alpha 1 (10 %).
        """
        def step(token, state, memory, at_limit):
            log_probs, state, _ = self.model.decode_step(token, state, memory, tables)
            return (*_best_tokens(log_probs, at_limit, k), state)

        def open_rows_only():
            keep = tf.where(~frozen)[:, 0]
            found = step(*_take((rows["token"], rows["state"], rows["memory"], at_limit), keep))
            rows_count = tf.shape(frozen, out_type=tf.int64)[:1]
            return tf.nest.map_structure(
                lambda x: tf.scatter_nd(keep[:, None], x,
                                        tf.concat([rows_count, tf.shape(x, tf.int64)[1:]], 0)),
                found)

        return tf.cond(tf.reduce_any(frozen), open_rows_only,
                       lambda: step(rows["token"], rows["state"], rows["memory"], at_limit))

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


def _best_tokens(log_probs, at_limit, k: int):
    """The k most probable next tokens of each row: log_probs [N, V] -> ([N, k], ids [N, k]).

    Search never emits PAD or BOS; a row at its length limit may only emit EOS. Ranks missing
    (k above the vocabulary, or rows at their limit) get -inf. The log-probs are the model's own
    (no renormalization), so a hypothesis's score is the same as its forced score.
    """
    # The k + 2 best hold the k best that are neither PAD nor BOS; masking those two among few
    # candidates spares a pass over the whole [N, V] array.
    found = tf.minimum(k + 2, tf.shape(log_probs)[-1])
    top_log_probs, top_ids = top_k(log_probs, found)
    never = tf.equal(top_ids, PAD) | tf.equal(top_ids, BOS)
    found = tf.minimum(k, found)
    top_log_probs, order = tf.math.top_k(tf.where(never, -np.inf, top_log_probs), found)
    top_ids = tf.gather(top_ids, order, batch_dims=1)
    top_log_probs = tf.pad(top_log_probs, [[0, 0], [0, k - found]], constant_values=-np.inf)
    top_ids = tf.pad(top_ids, [[0, 0], [0, k - found]])
    eos_only = tf.pad(log_probs[:, EOS:EOS + 1], [[0, 0], [0, k - 1]], constant_values=-np.inf)
    at_limit = at_limit[:, None]
    return tf.where(at_limit, eos_only, top_log_probs), tf.where(at_limit, EOS, top_ids)


def top_k(values, k, block: int = 64):
    """`tf.math.top_k(values, k)` over the last axis of [N, V], ties to the lower index as there.

    k must not exceed V (as for `tf.math.top_k`; here ranks past V would come back as -inf).

    TF's CPU top-k costs about 3 ns per element: a sixth of a beam step at an 8k vocabulary. The
    k best lie in the k blocks with the highest maxima (a block's maximum ranks above or with all
    its elements), so after one fast max pass only those blocks, kept in index order, are searched.
    """
    rows, width = tf.shape(values)[0], tf.shape(values)[1]
    blocks = (width + block - 1) // block
    padded = tf.pad(values, [[0, 0], [0, blocks * block - width]], constant_values=-np.inf)
    padded = tf.reshape(padded, [rows, blocks, block])
    _, chosen = tf.math.top_k(tf.reduce_max(padded, axis=2), tf.minimum(k, blocks))
    chosen = tf.sort(chosen, axis=1)  # index order, so that ties still go to the lower index
    top, position = tf.math.top_k(tf.reshape(tf.gather(padded, chosen, batch_dims=1), [rows, -1]),
                                  k)
    return top, tf.gather(chosen, position // block, batch_dims=1) * block + position % block


def _drop_finished(finished, items, rows=(), rows_per_item: int = 1):
    """Keeps only the unfinished items, so that no later step computes for finished ones.

    `items`: tensors indexed by item on their first axis; `rows`: tensors with `rows_per_item`
    consecutive rows per item (the hypotheses of a sentence). Returns (items, rows). The gathers
    copy the attention memory, so they run only on steps where something finished.
    """
    def gather():
        keep = tf.where(~finished)[:, 0]
        keep_rows = tf.reshape(keep[:, None] * rows_per_item +
                               tf.range(rows_per_item, dtype=keep.dtype), [-1])
        return _take(items, keep), _take(rows, keep_rows)

    return tf.cond(tf.reduce_any(finished), gather, lambda: (items, rows))


def _take(structure, indices):
    """The rows `indices` (first axis) of every tensor in a nested structure."""
    return tf.nest.map_structure(lambda x: tf.gather(x, indices), structure)


def _strip(row) -> list:
    """Ids up to (not including) the first EOS."""
    out = []
    for index in row:
        if index in (EOS, PAD):
            break
        out.append(int(index))
    return out
