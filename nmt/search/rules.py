"""The translation rules, written once for both pipelines that apply them: `nmt translate`
(`Translator`: Python lists and numpy, eager) and the exported SavedModel (`nmt export`: tf ops,
traced). Each rule takes numpy arrays or tensors and `ops`, the backend (`NUMPY` or
`TENSORFLOW`), as the length penalties serve floats and tensors alike.

    blank line     only whitespace (Python's `str.isspace`): not searched; "" scoring 0
    pieces         a line longer than `max_input_len` tokens (in its longest ensemble member) is
                   cut into ceil(longest / limit) pieces, each member's ids in equal shares
    length limit   output tokens, EOS included: max(1, int(ratio * words) + offset), where words
                   = source tokens without EOS (the longest member's), at least 1
    batches        segments sorted by length (stable), `batch_size` at a time; results are put
                   back in input order
    content        a hypothesis's ids before its first EOS or PAD
    joining        a cut line's translation: the best of each piece, non-empty texts joined by a
                   space, scored as one hypothesis (total log p / penalty(total length))

The fast test `test_export_and_translate_agree_on_a_tiny_model` (tests/integration/test_export.py)
checks that the two pipelines agree.
"""
from __future__ import annotations

import functools
import sys
from typing import Callable, Iterator, NamedTuple, Sequence

import numpy as np
import tensorflow as tf

from nmt.config.options import DecodeConfig
from nmt.data.batching import pad_batch, source_length
from vocab import EOS, PAD


class Ops(NamedTuple):
    """The few array operations the rules need, for numpy arrays or for tensors."""
    where: Callable  # (condition, x, y), scalars broadcast
    maximum: Callable
    clip: Callable  # (x, low, high)
    repeat: Callable  # (values [N], counts [N]) -> [sum(counts)]
    exclusive_cumsum: Callable
    arange: Callable  # (stop)
    total: Callable  # sum of all values
    truncate: Callable  # float -> int64, toward zero (as Python's int())
    float64: Callable
    first_true: Callable  # bool [N, T] -> int64 [N]: index of the first True in each row, or T
    argsort: Callable  # stable
    blank: Callable  # lines -> bool [N]
    join_texts: Callable  # a line's piece texts -> the non-empty ones joined by a space
    sum_per_line: Callable  # a line's piece values -> their sum


@functools.cache
def whitespace() -> str:
    """An RE2 class of the characters Python's str.split() and str.strip() treat as whitespace,
    so that word tokens and blank lines come out in the graph as `nmt translate` sees them
    (built when first needed: a pass over all of Unicode, 0.2 s)."""
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in map(chr, range(sys.maxunicode + 1))
                         if c.isspace()) + "]"


def _first_true_numpy(mask):
    mask = np.concatenate([mask, np.ones((*mask.shape[:-1], 1), bool)], axis=-1)
    return np.argmax(mask, axis=-1)


def _first_true_tf(mask):
    mask = tf.pad(mask, [[0, 0], [0, 1]], constant_values=True)
    return tf.argmax(tf.cast(mask, tf.int32), axis=-1)


def _tf_where(condition, x, y):
    # Python scalars take the dtype of the other branch (tf.where wants one dtype).
    if not tf.is_tensor(x):
        x = tf.constant(x, tf.convert_to_tensor(y).dtype)
    if not tf.is_tensor(y):
        y = tf.constant(y, x.dtype)
    return tf.where(condition, x, y)


NUMPY = Ops(
    where=np.where, maximum=np.maximum, clip=np.clip, repeat=np.repeat,
    exclusive_cumsum=lambda x: np.cumsum(x) - x, arange=np.arange, total=np.sum,
    truncate=lambda x: np.asarray(x).astype(np.int64),
    float64=lambda x: np.asarray(x, np.float64), first_true=_first_true_numpy,
    argsort=lambda x: np.argsort(x, kind="stable"),
    blank=lambda lines: np.array([not line.strip() for line in lines], bool),
    join_texts=lambda texts: " ".join(t for t in texts if t),
    sum_per_line=sum)  # Python's, in float64 as `nmt translate` always summed

TENSORFLOW = Ops(
    where=_tf_where, maximum=tf.maximum, clip=tf.clip_by_value, repeat=tf.repeat,
    exclusive_cumsum=lambda x: tf.cumsum(x, exclusive=True), arange=tf.range,
    total=tf.reduce_sum, truncate=lambda x: tf.cast(x, tf.int64),
    float64=lambda x: tf.cast(x, tf.float64), first_true=_first_true_tf,
    argsort=lambda x: tf.argsort(x, stable=True),
    blank=lambda lines: tf.equal(tf.strings.regex_replace(lines, whitespace(), ""), ""),
    # ragged [lines, (pieces)]
    join_texts=lambda texts: tf.strings.reduce_join(
        tf.ragged.boolean_mask(texts, tf.not_equal(texts, "")), axis=-1, separator=" "),
    sum_per_line=lambda values: tf.reduce_sum(values, axis=-1))


# ---- lines -> segments --------------------------------------------------------------------------

def blank_lines(lines, ops: Ops = NUMPY):
    """bool [N]: which lines hold only whitespace (they are not searched)."""
    return ops.blank(lines)


def piece_counts(longest, blank, limit: int, ops: Ops = NUMPY):
    """Segments of each line [N]: none for a blank line, one for a line of at most `limit`
    tokens (`longest`: in its longest member), else ceil(longest / limit)."""
    return ops.where(blank, 0, ops.maximum(-(-longest // limit), 1))


def piece_lengths(length, longest, counts, limit: int, ops: Ops = NUMPY):
    """Token count of every piece of one member's ids, all lines' pieces in order, flat
    [sum(counts)]; piece j of a line holds its ids [j * size, (j + 1) * size).

    The longest member's pieces are `limit` long (the last shorter); another member's ids are cut
    into as many pieces, of equal shares, so that piece j of every member covers about the same
    words. `length`, `longest`, `counts`: [N] per line.
    """
    size = ops.where(length == longest, limit,
                     ops.maximum(-(-length // ops.maximum(counts, 1)), 1))
    size, length = ops.repeat(size, counts), ops.repeat(length, counts)
    index = ops.arange(ops.total(counts)) - ops.repeat(ops.exclusive_cumsum(counts), counts)
    return ops.clip(length - index * size, 0, size)


# ---- search settings ----------------------------------------------------------------------------

def source_words(tokens, ops: Ops = NUMPY):
    """Words of each source [B] from its tokens, EOS included (an ensemble's: the longest
    member's); at least 1."""
    return ops.maximum(tokens - 1, 1)


def output_length_limit(words, decode: DecodeConfig, ops: Ops = NUMPY):
    """Output length limit, EOS included, for sources of `words` words: int(ratio * words) +
    offset, at least 1 (the product in float64, as Python computes it)."""
    return ops.maximum(ops.truncate(decode.max_len_ratio * ops.float64(words)) +
                       decode.max_len_offset, 1)


def max_length(words: int, decode: DecodeConfig) -> int:
    """`output_length_limit` of one source of `words` words, as a Python int."""
    return int(output_length_limit(np.asarray(words), decode))


def length_order(lengths, ops: Ops = NUMPY):
    """The order in which segments are searched: by length, ties in input order."""
    return ops.argsort(lengths)


def batch_rows(order, index, batch_size: int):
    """Rows (input positions) of the `index`-th batch of `batch_size` in `order`."""
    return order[index * batch_size:(index + 1) * batch_size]


def length_sorted_batches(sources: Sequence, batch_size: int
                          ) -> Iterator[tuple[list[int], np.ndarray]]:
    """Batches of similar-length sources (id lists; an ensemble's: tuples of one per member) for
    decoding: yields (their input indices, padded ids)."""
    order = length_order(np.array([source_length(s) for s in sources], np.int64))
    for index in range(-(-len(sources) // batch_size)):
        rows = batch_rows(order, index, batch_size).tolist()
        yield rows, pad_batch([sources[i] for i in rows])


# ---- hypotheses -> translations -----------------------------------------------------------------

def content_lengths(ids, ops: Ops = NUMPY):
    """ids [N, T] -> [N]: how many ids come before the first EOS or PAD (the hypothesis proper;
    search pads ended hypotheses with PAD)."""
    return ops.first_true((ids == EOS) | (ids == PAD))


def joined_log_prob(piece_log_probs, ops: Ops = NUMPY):
    """A cut line's log p: the sum of its pieces' best hypotheses' (`sum_per_line`)."""
    return ops.sum_per_line(piece_log_probs)


def joined_length(piece_content_lengths, ops: Ops = NUMPY):
    """A cut line's T for the penalty: its pieces' tokens, each piece's EOS included."""
    return ops.sum_per_line(piece_content_lengths + 1)


def joined_text(piece_texts, ops: Ops = NUMPY):
    """A cut line's text: its pieces' non-empty best texts joined by a space."""
    return ops.join_texts(piece_texts)

