"""Search: greedy and length-normalized beam search, and forced scoring of given targets.

Sees the model only through the inference protocol, `nmt.search.inference.InferenceModel` (a single
`Seq2Seq` or an `Ensemble`).

The score of a hypothesis y of T tokens (EOS included) is defined once, in `normalized_score`:

    score(y) = sum_t log p(y_t | y_<t, x) / penalty(T)       penalties: `nmt.config.penalties`

Both searches run whole in one `tf.function` (a `tf.while_loop` over steps, every hypothesis of the
batch in one tensor), so no Python runs per step; sentences leave the batch as they end, so the
steps of a batch's longest sentence compute for it alone. Every hypothesis must end with EOS: at its
sentence's length limit (ratio * source length + offset) only EOS may follow.
"""
from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from nmt.config import penalties
from nmt.config.options import DecodeConfig
from nmt.data.batching import pad_batch
from nmt.search import rules
from nmt.search.inference import InferenceModel
from vocab import BOS, EOS, PAD


class Hypothesis(NamedTuple):
    ids: list  # target ids, EOS excluded
    log_prob: float  # sum of log p over the tokens and EOS
    score: float  # log_prob / penalty(len(ids) + 1)
    token_log_probs: tuple = ()  # forced scoring only: log p of each token and of EOS


def length_penalty(length, alpha, kind: str = "average"):
    """penalty(T) of the registered penalty `kind` (`nmt.config.penalties`)."""
    return penalties.get(kind).penalty(tf.cast(length, tf.float32), alpha)


def normalized_score(log_prob, length, alpha, kind: str = "average"):
    """The one definition of a hypothesis score: sum log p / penalty(T)."""
    return log_prob / length_penalty(length, alpha, kind)


class Searcher:
    """Compiled search and scoring functions for one model, traced once per search setting.

    Args:
        model: an `InferenceModel` (a `Seq2Seq`, or an `Ensemble` with sources [B, M, S]).

    Every call takes its decode settings (`DecodeConfig`: beam size, alpha, penalty, length
    limit); the searcher holds only the model, its step tables and the compiled functions. The
    step tables are computed here, from the weights of the moment: call `refresh` after the
    weights change (as during training), or searches use the old ones.
    """

    def __init__(self, model: InferenceModel):
        self.model = model
        self._compiled = {}
        self.refresh()

    def refresh(self) -> None:
        """Recomputes the step tables from the model's current weights."""
        self.tables = self.model.step_tables()

    # ---- public API: numpy in, Python out -----------------------------------------------------

    def search(self, source: np.ndarray, decode: DecodeConfig,
               nbest: int = 1) -> list[list[Hypothesis]]:
        """The `nbest` best hypotheses of each sentence of a padded int batch [B, S] ([B, M, S])
        by normalized score, best first (`search_batch`: greedy at beam 1)."""
        return self._run("search", source, decode, nbest)

    def greedy(self, source: np.ndarray, decode: DecodeConfig) -> list[Hypothesis]:
        """The most probable token at each step: `search` at beam 1, one hypothesis each."""
        return [hyps[0] for hyps in self.search(source, replace(decode, beam_size=1))]

    def beam(self, source: np.ndarray, decode: DecodeConfig,
             nbest: int = 1) -> list[list[Hypothesis]]:
        """Beam search of width `decode.beam_size`, even at width 1 (where `search` runs
        greedy)."""
        return self._run("beam", source, decode, nbest)

    def score(self, source: np.ndarray, targets: Sequence[Sequence[int]], decode: DecodeConfig):
        """Forced scoring of given target ids (EOS is appended), the search's own score under
        `decode`'s alpha and penalty.

        Returns (hypotheses with the given ids, attention [B] list of [T+1, S] arrays).
        """
        penalties.get(decode.length_penalty)
        target = pad_batch([[BOS] + list(t) + [EOS] for t in targets])
        fn = self._function("score", np.ndim(source))
        log_probs, token_log_probs, weights = fn(tf.constant(source, tf.int32),
                                                 tf.constant(target, tf.int32))
        lengths = np.array([len(t) + 1 for t in targets])
        scores = normalized_score(log_probs, lengths, decode.alpha, decode.length_penalty).numpy()
        hyps = [Hypothesis(list(t), float(lp), float(s), tuple(map(float, per_token[:n])))
                for t, lp, s, per_token, n in zip(targets, log_probs.numpy(), scores,
                                                  token_log_probs.numpy(), lengths)]
        weights = weights.numpy()
        attention = [weights[i, :lengths[i], :] for i in range(len(targets))]
        return hyps, attention

    # ---- compiled graphs ----------------------------------------------------------------------

    def _run(self, kind: str, source: np.ndarray, decode: DecodeConfig, nbest: int):
        penalties.get(decode.length_penalty)
        if not 1 <= nbest <= decode.beam_size:
            raise ValueError(f"nbest must be between 1 and the beam size ({decode.beam_size})")
        fn = self._function(kind, np.ndim(source), decode.beam_size, nbest,
                            decode.length_penalty)
        words = rules.source_words(_source_tokens(source))
        ids, log_probs, scores = fn(
            tf.constant(source, tf.int32),
            tf.constant(rules.output_length_limit(words, decode), tf.int32),
            tf.constant(decode.alpha, tf.float32), self.tables)
        ids, log_probs, scores = ids.numpy(), log_probs.numpy(), scores.numpy()
        lengths = rules.content_lengths(ids)
        return [[Hypothesis(r[:n].tolist(), float(lp), float(s))
                 for r, n, lp, s in zip(rows, ns, lps, ss) if np.isfinite(s)]
                for rows, ns, lps, ss in zip(ids, lengths, log_probs, scores)]

    def _function(self, kind: str, rank: int, beam_size: int = 1, nbest: int = 1,
                  penalty: str = ""):
        key = (kind, rank, beam_size, nbest, penalty)
        if key not in self._compiled:
            model = self.model
            source = tf.TensorSpec([None] * rank, tf.int32)
            lengths = tf.TensorSpec([None], tf.int32)
            alpha = tf.TensorSpec([], tf.float32)
            tables = tf.nest.map_structure(tf.TensorSpec.from_tensor, self.tables)
            if kind == "score":
                fn = tf.function(lambda s, t: forced_log_prob(model, s, t),
                                 input_signature=[source, tf.TensorSpec([None, None], tf.int32)])
            else:
                search = search_batch if kind == "search" else _beam_batch

                def searched(s, m, a, t, search=search):
                    with tf.name_scope("search"):  # the scope `nmt bench profile` groups by
                        return search(model, s, m, a, t, beam_size, nbest, penalty)

                fn = tf.function(searched, input_signature=[source, lengths, alpha, tables])
            self._compiled[key] = fn
        return self._compiled[key]


def _source_tokens(source: np.ndarray) -> np.ndarray:
    """Tokens of each source of a padded batch [B], EOS included. An ensemble's members may cut a
    sentence into different numbers of tokens: the longest counts."""
    tokens = (np.asarray(source) != PAD).sum(axis=-1)
    return tokens.max(axis=1) if tokens.ndim == 2 else tokens


def search_batch(model: InferenceModel, source, max_lengths, alpha, tables, beam_size: int,
                 nbest: int, penalty: str):
    """The search of one batch, traced: greedy when `beam_size` and `nbest` are 1 (it finds the
    same hypothesis as beam 1, faster), else beam search. `penalty`: a name in
    `nmt.config.penalties`.

    Returns (ids [B, nbest, T], PAD after EOS; log p [B, nbest]; scores [B, nbest]), best first;
    ranks not found score -inf.
    """
    if beam_size == 1 and nbest == 1:
        ids, log_prob, lengths = greedy_search(model, source, max_lengths, tables)
        return (ids[:, None], log_prob[:, None],
                normalized_score(log_prob, lengths, alpha, penalty)[:, None])
    return _beam_batch(model, source, max_lengths, alpha, tables, beam_size, nbest, penalty)


def _beam_batch(model, source, max_lengths, alpha, tables, beam_size: int, nbest: int,
                penalty: str):
    ids, log_probs, scores = beam_search(model, source, max_lengths, alpha, tables,
                                         penalties.get(penalty), beam_size, nbest)
    return ids[:, :nbest], log_probs[:, :nbest], scores[:, :nbest]


# ---- greedy search ------------------------------------------------------------------------------

def greedy_search(model: InferenceModel, source, max_lengths, tables):
    """The most probable token at each step; a sentence leaves the batch when it ends.

    Returns (ids [B, T], PAD after EOS; log p [B]; lengths [B], EOS included).
    """
    batch = tf.shape(source)[0]
    memory, state = model.encode(source)
    # Per-row values of the sentences still decoding, all gathered together as rows finish.
    active = {"row": tf.range(batch), "token": tf.fill([batch], BOS), "state": state,
              "memory": memory, "max_length": max_lengths, "log_prob": tf.zeros([batch])}
    log_prob = tf.zeros([batch])
    lengths = tf.zeros([batch], tf.int32)
    outputs = tf.TensorArray(tf.int32, size=0, dynamic_size=True)

    def body(t, active, log_prob, lengths, outputs):
        step_log_probs, state, _ = model.decode_step(active["token"], active["state"],
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


# ---- beam search --------------------------------------------------------------------------------

class BeamState(NamedTuple):
    """The sentences still searching, b of them, each with r hypotheses.

    `alive_*` [b, r, ...]: open hypotheses and finished ones kept frozen in their slot (a finished
    hypothesis keeps its slot while it is among the k best, so beam 1 is exactly greedy);
    `best_*` [b, k, ...]: the k best finished hypotheses so far, the result.
    """
    index: tf.Tensor  # [b] the sentence's row in the batch
    max_length: tf.Tensor  # [b] output length limit, EOS included
    limit_penalty: tf.Tensor  # [b, 1] penalty(max_length), for the stop rule
    alive_log_prob: tf.Tensor  # [b, r]
    alive_done: tf.Tensor  # [b, r] bool: ended with EOS
    alive_len: tf.Tensor  # [b, r] tokens, EOS included
    alive_seq: tf.Tensor  # [b, r, limit]
    best_score: tf.Tensor  # [b, k]
    best_log_prob: tf.Tensor  # [b, k]
    best_seq: tf.Tensor  # [b, k, limit]
    memory: object  # the model's encoder memory, one copy that the sentence's r rows attend to


class Rows(NamedTuple):
    """Per hypothesis row [b * r, ...], the r rows of a sentence consecutive."""
    token: tf.Tensor  # the last token; PAD for a frozen hypothesis
    state: object  # the model's decoder state


class Finished(NamedTuple):
    """The k best finished hypotheses of every sentence of the batch [B, k, ...]."""
    score: tf.Tensor
    log_prob: tf.Tensor
    seq: tf.Tensor


def beam_search(model: InferenceModel, source, max_lengths, alpha, tables,
                penalty: penalties.LengthPenalty, beam_size: int, nbest: int):
    """Beam search in which finished hypotheses stay in the beam, frozen.

    Each step extends the open hypotheses (`_beam_step`), merges those that just finished into
    the best finished ones (`_merge_finished`) and lets the sentences that cannot improve leave
    the batch (`_sentences_done`, the stop rule of `penalty`). Returns (ids [B, k, limit],
    log p [B, k], scores [B, k]), best first; unfilled ranks score -inf.
    """
    k = beam_size
    batch = tf.shape(source)[0]
    limit = tf.reduce_max(max_lengths)
    memory, state = model.encode(source)
    neg_inf = tf.constant(-np.inf, tf.float32)
    # The first step starts from one hypothesis (BOS) per sentence, r = 1; every later step
    # from the k it chose.
    sentences = BeamState(
        index=tf.range(batch), max_length=max_lengths,
        limit_penalty=penalty.penalty(tf.cast(max_lengths, tf.float32), alpha)[:, None],
        alive_log_prob=tf.zeros([batch, 1]), alive_done=tf.zeros([batch, 1], tf.bool),
        alive_len=tf.zeros([batch, 1], tf.int32), alive_seq=tf.zeros([batch, 1, limit], tf.int32),
        best_score=tf.fill([batch, k], neg_inf), best_log_prob=tf.fill([batch, k], neg_inf),
        best_seq=tf.zeros([batch, k, limit], tf.int32), memory=memory)
    rows = Rows(tf.fill([batch], BOS), state)
    finished = Finished(sentences.best_score, sentences.best_log_prob, sentences.best_seq)

    def step(t, sentences, rows, finished, first=False):
        sentences, rows, newly_done, top_score = _beam_step(
            model, tables, t, sentences, rows, alpha, penalty, k, first)
        sentences = _merge_finished(sentences, newly_done, top_score, k)
        index = sentences.index[:, None]
        finished = Finished(*(tf.tensor_scatter_nd_update(value, index, new) for value, new in
                              zip(finished, (sentences.best_score, sentences.best_log_prob,
                                             sentences.best_seq))))
        sentences, rows = _drop_finished(_sentences_done(sentences, penalty, nbest), sentences,
                                         rows, rows_per_item=k)
        return t + 1, sentences, rows, finished

    after_first = step(tf.constant(0), sentences, rows, finished, first=True)
    _, _, _, finished = tf.while_loop(
        lambda t, sentences, *_: (t < limit) & (tf.size(sentences.index) > 0), step, after_first)
    return finished.seq, finished.log_prob, finished.score


def _beam_step(model, tables, t, s: BeamState, rows: Rows, alpha, penalty, k: int, first: bool):
    """Extends every hypothesis and keeps the k best of each sentence by normalized score.

    Open hypotheses extend by their k best tokens; a frozen one only by PAD, at no cost (one
    live slot of its k). Returns (state, rows, newly_done [b, k], their scores [b, k]).
    """
    b = tf.shape(s.index)[0]
    r = 1 if first else k  # hypotheses per sentence going into this step
    neg_inf = tf.constant(-np.inf, tf.float32)
    first_only = tf.concat([[0.0], tf.fill([k - 1], neg_inf)], 0)
    # The k best extensions of each hypothesis hold the k best of the sentence.
    at_limit = tf.repeat(t >= s.max_length - 1, r)
    top_log_prob, top_token, state = _extend_open(model, rows, s.memory, tables, at_limit,
                                                  tf.reshape(s.alive_done, [-1]), r, k)
    top_log_prob, top_token = (tf.reshape(x, [b, r, k]) for x in (top_log_prob, top_token))
    done = s.alive_done[:, :, None]
    top_log_prob = tf.where(done, first_only[None, None], top_log_prob)
    top_token = tf.where(done, PAD, top_token)
    candidate_log_prob = tf.reshape(s.alive_log_prob[:, :, None] + top_log_prob, [b, r * k])
    candidate_len = tf.where(s.alive_done, s.alive_len, t + 1)  # [b, r]
    candidate_score = candidate_log_prob / penalty.penalty(
        tf.cast(tf.repeat(candidate_len, k, axis=1), tf.float32), alpha)
    top_score, top_index = tf.math.top_k(candidate_score, k)
    parent = top_index // k
    token = tf.gather(tf.reshape(top_token, [b, r * k]), top_index, batch_dims=1)
    was_done = tf.gather(s.alive_done, parent, batch_dims=1)
    alive_seq = tf.gather(s.alive_seq, parent, batch_dims=1)
    alive_done = was_done | tf.equal(token, EOS)
    s = s._replace(
        alive_log_prob=tf.gather(candidate_log_prob, top_index, batch_dims=1),
        alive_len=tf.gather(candidate_len, parent, batch_dims=1),
        alive_seq=tf.where(tf.equal(tf.range(tf.shape(alive_seq)[2]), t)[None, None],
                           token[:, :, None], alive_seq),
        alive_done=alive_done)
    newly_done = ~was_done & tf.equal(token, EOS) & tf.math.is_finite(top_score)
    parent_rows = tf.reshape(parent + tf.range(b)[:, None] * r, [-1])
    rows = Rows(token=tf.reshape(tf.where(alive_done, PAD, token), [-1]),
                state=_take(state, parent_rows))
    return s, rows, newly_done, top_score


def _merge_finished(s: BeamState, newly_done, top_score, k: int) -> BeamState:
    """The k best of the finished hypotheses so far and those that finished at this step."""
    neg_inf = tf.constant(-np.inf, tf.float32)
    merged_score = tf.concat([s.best_score, tf.where(newly_done, top_score, neg_inf)], 1)
    merged_log_prob = tf.concat([s.best_log_prob, s.alive_log_prob], 1)
    merged_seq = tf.concat([s.best_seq, s.alive_seq], 1)
    best_score, keep = tf.math.top_k(merged_score, k)
    return s._replace(best_score=best_score,
                      best_log_prob=tf.gather(merged_log_prob, keep, batch_dims=1),
                      best_seq=tf.gather(merged_seq, keep, batch_dims=1))


def _sentences_done(s: BeamState, penalty: penalties.LengthPenalty, nbest: int):
    """[b] bool: no open hypothesis left, or none can still beat the `nbest`-th finished one
    (the bound is the penalty's own, `LengthPenalty.best_reachable`)."""
    neg_inf = tf.constant(-np.inf, tf.float32)
    open_log_prob = tf.reduce_max(tf.where(s.alive_done, neg_inf, s.alive_log_prob), axis=1,
                                  keepdims=True)
    cannot_improve = s.best_score[:, nbest - 1:nbest] >= penalty.best_reachable(
        open_log_prob, s.limit_penalty)
    return tf.reduce_all(s.alive_done | cannot_improve, axis=1)


def _extend_open(model, rows: Rows, memory, tables, at_limit, frozen, r: int, k: int):
    """The k best next tokens and the new state of every hypothesis row that is not frozen.

    `memory` has one row per sentence, which its r consecutive hypothesis rows attend to. A
    frozen (finished) row extends by PAD alone, so once some rows are frozen the model runs on
    the others only, each with its own copy of its sentence's memory; frozen rows get zeros: the
    caller replaces their tokens, and their state is never read again (their descendants are
    frozen too). Against running every row on the shared memory, beam 5, one thread: 2-5 %
    faster on multi30k at alpha 0, 6-10 % at alpha 1, 15 % on ja-en-tiny at alpha 1.
    """
    def step(token, state, memory, at_limit, rows_per_memory=1):
        log_probs, state, _ = model.decode_step(token, state, memory, tables, rows_per_memory)
        return (*_best_tokens(log_probs, at_limit, k), state)

    def open_rows_only():
        keep = tf.where(~frozen)[:, 0]
        found = step(*_take((rows.token, rows.state), keep), _take(memory, keep // r),
                     tf.gather(at_limit, keep))
        rows_count = tf.shape(frozen, out_type=tf.int64)[:1]
        return tf.nest.map_structure(
            lambda x: tf.scatter_nd(keep[:, None], x,
                                    tf.concat([rows_count, tf.shape(x, tf.int64)[1:]], 0)),
            found)

    return tf.cond(tf.reduce_any(frozen), open_rows_only,
                   lambda: step(rows.token, rows.state, memory, at_limit, r))


# ---- forced scoring -----------------------------------------------------------------------------

def forced_log_prob(model: InferenceModel, source, target):
    """Sum of log p of target[:, 1:] given target[:, :-1], each token's log p (0 at PAD), and
    the attention weights."""
    target_in, target_out = target[:, :-1], target[:, 1:]
    log_probs, weights = model.teacher_forced(source, target_in)
    mask = tf.cast(tf.not_equal(target_out, PAD), tf.float32)
    token_log_probs = tf.gather(log_probs, target_out, batch_dims=2) * mask
    return tf.reduce_sum(token_log_probs, axis=1), token_log_probs, weights


def search_all(searcher: Searcher, sources: Sequence, decode: DecodeConfig, nbest: int = 1
               ) -> list[list[Hypothesis]]:
    """n-best lists for many sources (id lists; for an ensemble, tuples of one id list per
    member), searched in length-sorted batches of `decode.batch_size`, in input order."""
    results: list = [None] * len(sources)
    for indices, batch in rules.length_sorted_batches(sources, decode.batch_size):
        for index, hyps in zip(indices, searcher.search(batch, decode, nbest)):
            results[index] = hyps
    return results


def score_all(searcher: Searcher, sources: Sequence, targets: Sequence[Sequence[int]],
              decode: DecodeConfig):
    """Forced scores and attention of many (source, target) pairs, in length-sorted batches.

    Returns (hypotheses, attention matrices [T+1, S+1]) in input order; an ensemble's attention
    has the columns of its first member's source tokens.
    """
    hyps: list = [None] * len(sources)
    attention: list = [None] * len(sources)
    for indices, batch in rules.length_sorted_batches(sources, decode.batch_size):
        scored, weights = searcher.score(batch, [targets[i] for i in indices], decode)
        for index, hyp, matrix in zip(indices, scored, weights):
            columns = len(sources[index][0] if isinstance(sources[index], tuple)
                          else sources[index])
            hyps[index], attention[index] = hyp, matrix[:, :columns]
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


def top_k(values, k):
    """`tf.math.top_k(values, k)` over the last axis of [N, V], ties to the lower index as there.

    k must not exceed V (as for `tf.math.top_k`; here ranks past V would come back as -inf).

    TF's CPU top-k costs about 3 ns per element: a sixth of a beam step at an 8k vocabulary. The
    k best lie in the k blocks with the highest maxima (a block's maximum ranks above or with all
    its elements), so after one fast max pass only those blocks, kept in index order, are searched.
    """
    rows, width = tf.shape(values)[0], tf.shape(values)[1]
    block = _block_width(values.shape[-1])
    blocks = (width + block - 1) // block
    if values.shape[-1] is None or values.shape[-1] % block:
        values = tf.pad(values, [[0, 0], [0, blocks * block - width]], constant_values=-np.inf)
    blocked = tf.reshape(values, [rows, blocks, block])
    _, chosen = tf.math.top_k(tf.reduce_max(blocked, axis=2), tf.minimum(k, blocks))
    chosen = tf.sort(chosen, axis=1)  # index order, so that ties still go to the lower index
    top, position = tf.math.top_k(tf.reshape(tf.gather(blocked, chosen, batch_dims=1), [rows, -1]),
                                  k)
    return top, tf.gather(chosen, position // block, batch_dims=1) * block + position % block


def _block_width(width: int | None, preferred: int = 64) -> int:
    """The width of `top_k`'s blocks for V = `width` (None: unknown when traced): a divisor of V
    nearest to `preferred`, within a factor of 2 of it, so that the values are cut into blocks in
    place (padding copies [N, V]: 1.7 % of a bfloat16 beam search at multi30k's 7,931 = 77 * 103
    tokens); else `preferred`, the values padded."""
    if width is None:
        return preferred
    divisors = [d for d in range(preferred // 2, 2 * preferred + 1) if width % d == 0]
    return min(divisors, key=lambda d: abs(d - preferred), default=preferred)


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

