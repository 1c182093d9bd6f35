"""Ids to batches: the streaming tf.data training pipeline, and padded inference batches (their
length-sorted order is a translation rule: `nmt.search.rules`).

Training examples: source = ids + EOS; target_in = BOS + ids; target_out = ids + EOS; PAD = 0.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from nmt.system import termination
from vocab import BOS, EOS, PAD, UNK

PairReader = Callable[[], Iterable[tuple[str, str]]]


@dataclasses.dataclass
class CorpusStats:
    """What one pass over a parallel corpus found (logged before training)."""
    pairs: int = 0
    kept: int = 0
    dropped_too_long: int = 0
    target_tokens: int = 0  # of kept pairs, EOS included: the tokens one epoch trains on
    # Of kept pairs, per side (source, target): tokens or pieces (no EOS), and those the
    # vocabulary maps to UNK.
    tokens: list = dataclasses.field(default_factory=lambda: [0, 0])
    unknown: list = dataclasses.field(default_factory=lambda: [0, 0])

    def add(self, other: "CorpusStats") -> None:
        for field in ("pairs", "kept", "dropped_too_long", "target_tokens"):
            setattr(self, field, getattr(self, field) + getattr(other, field))
        for side in (0, 1):
            self.tokens[side] += other.tokens[side]
            self.unknown[side] += other.unknown[side]

    def unknown_share(self, side: int) -> float:
        return self.unknown[side] / max(self.tokens[side], 1)


def source_ids(tokenizer, line: str) -> list[int]:
    """Model input for a source line: its ids followed by EOS (the end-of-sentence marker)."""
    return tokenizer.encode(line) + [EOS]


def encode_pair(src: str, tgt: str, src_tokenizer, tgt_tokenizer, max_len: int | None = None,
                stats: CorpusStats | None = None) -> tuple[np.ndarray, np.ndarray] | None:
    """(source ids + EOS, BOS + target ids + EOS) as int32 arrays, or None for a pair with more
    than `max_len` tokens on either side (counted in `stats`, as the pairs kept are)."""
    src_ids, tgt_ids = source_ids(src_tokenizer, src), tgt_tokenizer.encode(tgt)
    if stats is not None:
        stats.pairs += 1
    if max_len is not None and (len(src_ids) - 1 > max_len or len(tgt_ids) > max_len):
        if stats is not None:
            stats.dropped_too_long += 1
        return None
    if stats is not None:
        stats.kept += 1
        stats.target_tokens += len(tgt_ids) + 1
        for side, ids in enumerate((src_ids[:-1], tgt_ids)):
            stats.tokens[side] += len(ids)
            stats.unknown[side] += ids.count(UNK)
    return (np.asarray(src_ids, dtype=np.int32),
            np.asarray([BOS] + tgt_ids + [EOS], dtype=np.int32))


def encode_pairs(pairs: Iterable[tuple[str, str]], src_tokenizer, tgt_tokenizer,
                 max_len: int | None = None,
                 stats: CorpusStats | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The pairs encoded by `encode_pair`, those too long left out."""
    for src, tgt in pairs:
        encoded = encode_pair(src, tgt, src_tokenizer, tgt_tokenizer, max_len, stats)
        if encoded is not None:
            yield encoded


def bucket_batch_sizes(boundaries: Sequence[int], batch_size: int, batch_tokens: int = 0
                       ) -> list[int]:
    """Sentences per batch for each bucket of `bucket_by_sequence_length` with these boundaries.

    Bucket i holds targets (BOS and EOS included) shorter than `boundaries[i]`, the last bucket
    those of at least `boundaries[-1]` ids. With a token budget, a batch holds as many sentences
    of its bucket's longest length as fit in `batch_tokens` target tokens (target_out: EOS
    included, BOS not), at least one; otherwise `batch_size` sentences.
    """
    if not batch_tokens:
        return [batch_size] * (len(boundaries) + 1)
    longest = [b - 1 for b in boundaries] + [boundaries[-1]]
    return [max(1, batch_tokens // (length - 1)) for length in longest]


def bucket_boundaries(longest: int, width: int = 1) -> list[int]:
    """Bucket boundaries over target lengths 2..`longest` (BOS/EOS included), `width` lengths
    per bucket: width 1 gives one bucket per exact length."""
    boundaries = list(range(2 + width, longest + 2, width))
    if not boundaries or boundaries[-1] < longest + 1:
        boundaries.append(longest + 1)
    return boundaries


def bucket_plan(max_len: int | None, batch_size: int, batch_tokens: int = 0,
                bucket_width: int = 1, max_bucket_len: int = 0) -> tuple[list[int], list[int]]:
    """(bucket boundaries, sentences per batch of each bucket) of the training batches."""
    boundaries = bucket_boundaries((max_len or max_bucket_len or 100) + 2, bucket_width)
    return boundaries, bucket_batch_sizes(boundaries, batch_size, batch_tokens)


def streamed_pairs(read_pairs: PairReader, src_tokenizer, tgt_tokenizer, *, max_len: int | None,
                   shuffle_buffer: int = 0, seed: int = 0):
    """A tf.data pipeline of (source ids, target ids) encoding the pairs `read_pairs()` yields
    (called once per epoch), in a shuffle buffer of `shuffle_buffer` pairs (0: corpus order)."""
    import tensorflow as tf

    spec = tf.TensorSpec([None], tf.int32)

    def encoded_pairs():
        pairs = encode_pairs(read_pairs(), src_tokenizer, tgt_tokenizer, max_len)
        # The shuffle buffer fills inside one TensorFlow call: only the reader can cut it short.
        return termination.until_stop_requested(pairs) if shuffle_buffer else pairs

    dataset = tf.data.Dataset.from_generator(encoded_pairs, output_signature=(spec, spec))
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset


def bucketed_batches(pairs, boundaries: list[int], sizes: list[int]):
    """({"source", "target_in"}, target_out) batches of pairs of the same bucket of target
    lengths (see `bucket_plan`; the decoder is the expensive part, so target padding is nearly
    zero with one length per bucket)."""
    import tensorflow as tf

    dataset = pairs.bucket_by_sequence_length(
        lambda src, tgt: tf.shape(tgt)[0], boundaries, sizes,
        padded_shapes=([None], [None]), padding_values=(PAD, PAD))
    dataset = dataset.map(lambda src, tgt: ({"source": src, "target_in": tgt[:, :-1]}, tgt[:, 1:]),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def training_dataset(read_pairs: PairReader, src_tokenizer, tgt_tokenizer, *, batch_size: int,
                     max_len: int | None, shuffle_buffer: int = 0, seed: int = 0,
                     max_bucket_len: int = 0, batch_tokens: int = 0, bucket_width: int = 1):
    """A streaming, bucketed tf.data pipeline of ({"source", "target_in"}, target_out) batches.

    `read_pairs` is called once per epoch and yields (source line, target line); nothing is held
    in memory but the shuffle buffer and the partly filled buckets. `batch_tokens` > 0 fills
    batches up to that many target tokens instead of `batch_size` sentences, so every update
    sees about as many tokens (see `bucket_batch_sizes`). `bucket_width` > 1 puts that many
    target lengths in a bucket (mixed lengths, padded; as wide as the longest target: random
    batches). `shuffle_buffer` 0 keeps corpus order (dev data).
    """
    pairs = streamed_pairs(read_pairs, src_tokenizer, tgt_tokenizer, max_len=max_len,
                           shuffle_buffer=shuffle_buffer, seed=seed)
    return bucketed_batches(pairs, *bucket_plan(max_len, batch_size, batch_tokens, bucket_width,
                                                max_bucket_len))


def pad_batch(sequences: Sequence, dtype=np.int32) -> np.ndarray:
    """Right-pads id sequences with PAD into a [len(sequences), longest] array.

    An ensemble's sources, a tuple of M id sequences each (one per member), give [B, M, longest].
    """
    if sequences and isinstance(sequences[0], tuple):
        members = [pad_batch([s[m] for s in sequences], dtype) for m in range(len(sequences[0]))]
        longest = max(m.shape[1] for m in members)
        return np.stack([np.pad(m, ((0, 0), (0, longest - m.shape[1])), constant_values=PAD)
                         for m in members], axis=1)
    longest = max((len(s) for s in sequences), default=0)
    batch = np.full((len(sequences), max(longest, 1)), PAD, dtype=dtype)
    for row, ids in enumerate(sequences):
        batch[row, :len(ids)] = ids
    return batch


def source_length(source) -> int:
    """Tokens of a source: an id list, or an ensemble's tuple of them (the longest)."""
    return max(map(len, source)) if isinstance(source, tuple) else len(source)

