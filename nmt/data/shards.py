"""Training pairs as token ids on disk, made once and read every epoch without Python: the shard
file format, the parallel encoding of a corpus into shuffled shards, and the tf.data reader.

A shard file holds little-endian int32 values:

    [P, S, T, source row splits (P + 1), target row splits (P + 1), source ids (S), target ids (T)]

for P pairs whose sources are ids + EOS and targets BOS + ids + EOS (as `batching.encode_pairs`
yields them). Each pair goes to a random shard and every shard is shuffled, so each shard is a
sample of the whole corpus: a corpus sorted by length or by source trains as a shuffled one.
The reader shuffles the order of the shards each epoch and mixes two at a time.
"""
from __future__ import annotations

import collections
import contextlib
import ctypes
import dataclasses
import multiprocessing
import os
import queue
import signal
from pathlib import Path

import numpy as np

from nmt.data import batching
from nmt.errors import DataError, NmtError
from nmt.files import textio

HEADER = 3
DTYPE = np.dtype("<i4")
LINES_PER_RANGE = 50_000  # lines per unit of work of an encoding process
PAIRS_PER_SHARD = 100_000  # a shard is read into memory whole: ~25 MB at 30 ids a side
LINES_PER_JOB = 200_000


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.ids"


def shard_count(pairs: int) -> int:
    return max(1, -(-pairs // PAIRS_PER_SHARD))


def write_shard(path: Path, sources: list, targets: list) -> None:
    """Writes one shard file of the pairs (sources[i], targets[i]) (int sequences)."""
    header = [len(sources), sum(map(len, sources)), sum(map(len, targets))]
    parts = [np.asarray(header, DTYPE)]
    for side in (sources, targets):
        parts.append(np.concatenate([[0], np.cumsum([len(ids) for ids in side])]).astype(DTYPE))
    for side in (sources, targets):
        parts.append(np.concatenate(side).astype(DTYPE) if side else np.zeros(0, DTYPE))
    with open(path, "wb") as handle:
        for part in parts:
            handle.write(part.tobytes())


def read_shard(path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(sources, targets) of a shard file, as numpy arrays (the reader's twin in numpy: tests
    and checks)."""
    values = np.fromfile(path, DTYPE)
    pairs, src_len, tgt_len = (int(v) for v in values[:HEADER])
    splits_end = HEADER + 2 * (pairs + 1)
    src_splits = values[HEADER:HEADER + pairs + 1]
    tgt_splits = values[HEADER + pairs + 1:splits_end]
    src_ids = values[splits_end:splits_end + src_len]
    tgt_ids = values[splits_end + src_len:splits_end + src_len + tgt_len]
    return ([src_ids[a:b] for a, b in zip(src_splits[:-1], src_splits[1:])],
            [tgt_ids[a:b] for a, b in zip(tgt_splits[:-1], tgt_splits[1:])])


# ---- reading: tf.data ---------------------------------------------------------------------------

def pairs_dataset(paths: list[str], seed: int, shuffle_buffer: int):
    """A tf.data pipeline of (source ids, target ids) over the shard files: the shards in a new
    order each epoch, two read at once and their pairs interleaved, then a shuffle buffer."""
    import tensorflow as tf

    files = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle_buffer:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    # Every shard is a random sample of the corpus already: mixing two at a time (each held in
    # memory while it is read, ~25 MB) shuffles well enough.
    pairs = files.interleave(_shard_pairs, cycle_length=min(len(paths), 2), block_length=1,
                             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if shuffle_buffer:
        pairs = pairs.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return pairs


def _shard_pairs(path):
    """The pairs of one shard file (TensorFlow ops only: no Python per pair)."""
    import tensorflow as tf

    values = tf.io.decode_raw(tf.io.read_file(path), tf.int32, little_endian=True)
    pairs, src_len = values[0], values[1]
    src_splits = values[HEADER:HEADER + pairs + 1]
    tgt_splits = values[HEADER + pairs + 1:HEADER + 2 * (pairs + 1)]
    src_ids = values[HEADER + 2 * (pairs + 1):]
    tgt_ids = src_ids[src_len:]

    def pair(i):
        return (src_ids[src_splits[i]:src_splits[i + 1]], tgt_ids[tgt_splits[i]:tgt_splits[i + 1]])

    return tf.data.Dataset.range(tf.cast(pairs, tf.int64)).map(
        lambda i: pair(tf.cast(i, tf.int32)))


def batches_per_epoch(target_lengths: dict, boundaries: list[int], sizes: list[int]) -> int:
    """Batches `bucket_by_sequence_length` makes of pairs with these target lengths (BOS and
    EOS included; {length: pairs}): every bucket gives full batches and one partial one, in any
    order of the pairs."""
    per_bucket = collections.Counter()
    for length, count in target_lengths.items():
        per_bucket[sum(1 for b in boundaries if int(length) >= b)] += count
    return sum(-(-count // sizes[bucket]) for bucket, count in per_bucket.items())


# ---- writing: the corpus encoded in parallel ----------------------------------------------------

@dataclasses.dataclass
class Encoded:
    """What encoding a corpus found: the lines left out or changed (`textio.Skipped`, the pairs
    dropped for length among them), the pairs' counts (`batching.CorpusStats`), the target
    lengths {length: pairs} and the pairs per shard."""
    skipped: textio.Skipped
    stats: batching.CorpusStats
    target_lengths: dict
    shard_pairs: list


@dataclasses.dataclass
class _Settings:
    files: tuple  # (source, target) corpus files
    max_line_tokens: int
    vocab_prefixes: tuple  # (source, target) tokenizer prefixes, loaded in each process
    max_len: int | None
    too_long: str  # the reason noted for pairs over max_len
    shards: int
    seed: int
    folder: str  # pieces are written here, shards too
    parent: int = dataclasses.field(default_factory=os.getpid)  # the main process


def line_ranges(files, limit: int = 0) -> tuple[list[tuple[int, int, int, int]], int]:
    """([(source offset, target offset, first line, lines)] for every `LINES_PER_RANGE` lines,
    the number of lines), at most `limit` lines if > 0; the files' newlines are counted in
    binary (fast), their content is checked when each range is read. Raises DataError for an
    empty or a misaligned corpus."""
    (src_starts, src_lines), (_, tgt_lines) = found = [_line_starts(path) for path in files]
    if src_lines != tgt_lines:
        textio.check_parallel(*files)  # names the short file and its last line
    if src_lines == 0:
        raise DataError("empty file", str(files[0]))
    lines = min(src_lines, limit) if limit else src_lines
    return [(src_starts[i], found[1][0][i], i * LINES_PER_RANGE + 1,
             min(LINES_PER_RANGE, lines - i * LINES_PER_RANGE))
            for i in range(-(-lines // LINES_PER_RANGE))], lines


def _line_starts(path) -> tuple[list[int], int]:
    """(byte offsets of lines 1, 1 + LINES_PER_RANGE, ..., the number of lines)."""
    starts, lines, position, last = [0], 0, 0, b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 24):
            ends = np.flatnonzero(np.frombuffer(block, np.uint8) == ord("\n"))
            after = lines + 1 + np.arange(len(ends))  # lines ended so far, at each newline
            starts += (position + ends[after % LINES_PER_RANGE == 0] + 1).tolist()
            lines, position, last = lines + len(ends), position + len(block), block[-1:]
    lines += last != b"\n"  # a last line without a newline
    return starts, lines


def encode_corpus(files, ranges: list, lines: int, max_line_tokens: int, vocab_prefixes: tuple,
                  max_len: int | None, too_long: str, folder: Path, jobs: int,
                  seed: int) -> Encoded:
    """Encodes the `ranges` of a corpus (`line_ranges`) into `shard_count(lines)` shuffled shard
    files in `folder`, with `jobs` processes.

    Each process reads and checks the ranges it is given, encodes their pairs, sends every pair
    to a shard chosen at random (seeded by the range, so the result does not depend on which
    process took which range) and appends it to its piece of that shard. Then each shard's
    pieces are put in line order, shuffled (seeded) and written as one shard file. With one
    job, all of it runs in this process.
    """
    settings = _Settings(tuple(map(str, files)), max_line_tokens,
                         tuple(map(str, vocab_prefixes)), max_len, too_long, shard_count(lines),
                         seed, str(folder))
    if jobs == 1:
        encoder = _Encoder(settings, 0)
        for part in ranges:
            encoder.encode(part)
        found = [encoder.finish()]
        counts = [_write_shard_from_pieces(settings, index, 1)
                  for index in range(settings.shards)]
    else:
        found, counts = _encode_in_processes(ranges, settings, jobs)
    skipped, stats, lengths = textio.Skipped(), batching.CorpusStats(), collections.Counter()
    for part_skipped, part_stats, part_lengths in found:
        skipped.merge(part_skipped)
        stats.add(part_stats)
        lengths.update(part_lengths)
    return Encoded(skipped, stats, dict(sorted(lengths.items())), counts)


def _encode_in_processes(ranges: list, settings: _Settings, jobs: int):
    context = multiprocessing.get_context("spawn")  # no fork of a process holding threads
    work, results = context.Queue(maxsize=2 * jobs), context.Queue()
    workers = [context.Process(target=_encode_worker, args=(number, settings, work, results),
                               daemon=True) for number in range(jobs)]
    for worker in workers:
        worker.start()
    try:
        for part in ranges:
            _put(work, part, workers, results)
        for _ in workers:
            _put(work, None, workers, results)
        found = [_result(results, workers) for _ in workers]
        for worker in workers:
            worker.join()
        with context.Pool(jobs, initializer=_as_helper_of, initargs=(os.getpid(),)) as pool:
            counts = pool.starmap(_write_shard_from_pieces,
                                  [(settings, index, jobs) for index in range(settings.shards)])
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()
        # Ranges still queued for a process that stopped must not hold this one at its exit.
        work.cancel_join_thread()
    return found, counts


def _put(work, item, workers, results) -> None:
    """Queues a range, noticing a process that stopped (it would never take it): one that
    failed sent its error."""
    while True:
        try:
            work.put(item, timeout=1)
            return
        except queue.Full:
            if any(worker.exitcode is not None for worker in workers):
                _result(results, workers)  # raises the error sent
                raise NmtError("an encoding process ended before the corpus did")


def _result(results, workers):
    while True:
        try:
            kind, value = results.get(timeout=1)
        except queue.Empty:
            for worker in workers:
                if worker.exitcode not in (None, 0):
                    raise NmtError(f"an encoding process ended with exit code "
                                   f"{worker.exitcode}") from None
            continue
        if kind == "os_error":
            raise OSError(*value)
        if kind == "error":
            raise NmtError(value)
        return value


def _as_helper_of(parent: int) -> None:
    """Set up a helper process: Ctrl-C reaches the whole process group, but the main process
    stops its helpers itself; and a helper dies with the main process, even if that is killed
    (Linux: PR_SET_PDEATHSIG), instead of waiting for work forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


def _piece(settings: _Settings, worker: int, shard: int) -> Path:
    return Path(settings.folder) / f"piece-{worker}-{shard}.tmp"


class _Encoder:
    """Reads and encodes ranges of the corpus into one process's pieces of every shard: runs of
    records [line number, source length, target length, source ids, target ids] (int32)."""

    def __init__(self, settings: _Settings, number: int):
        import vocab

        self.settings = settings
        self.tokenizers = [vocab.load(prefix) for prefix in settings.vocab_prefixes]
        self.skipped, self.stats = textio.Skipped(), batching.CorpusStats()
        self.lengths = collections.Counter()
        self.pieces = [open(_piece(settings, number, shard), "wb")
                       for shard in range(settings.shards)]

    def encode(self, part: tuple[int, int, int, int]) -> None:
        src_offset, tgt_offset, first, lines = part
        rng = np.random.default_rng([self.settings.seed, first])
        records = collections.defaultdict(list)
        for line, src, tgt in textio.numbered_pairs(
                *self.settings.files, max_tokens=self.settings.max_line_tokens, limit=lines,
                skipped=self.skipped, start=(src_offset, tgt_offset, first)):
            encoded = batching.encode_pair(src, tgt, *self.tokenizers, self.settings.max_len,
                                           self.stats)
            if encoded is None:
                self.skipped.add(self.settings.too_long, line)
                continue
            source, target = encoded
            self.lengths[len(target)] += 1
            records[int(rng.integers(self.settings.shards))].append(
                np.concatenate([[line, len(source), len(target)], source, target]))
        for shard, parts in records.items():
            self.pieces[shard].write(np.concatenate(parts).astype(DTYPE).tobytes())

    def finish(self) -> tuple:
        for piece in self.pieces:
            piece.close()
        return self.skipped, self.stats, self.lengths


def _encode_worker(number: int, settings: _Settings, work, results) -> None:
    """One encoding process: ranges from `work` until None, then its counts to `results`."""
    _as_helper_of(settings.parent)
    try:
        encoder = _Encoder(settings, number)
        while (part := work.get()) is not None:
            encoder.encode(part)
        results.put(("done", encoder.finish()))
    except OSError as err:  # a full disk: the main process names its folder
        results.put(("os_error", (err.errno, err.strerror)))
    except DataError as err:  # a bad line: its file and number
        results.put(("error", str(err)))
    except Exception as err:  # noqa: BLE001 - sent to the main process, which raises it
        results.put(("error", f"encoding the corpus failed: {err}"))


def _write_shard_from_pieces(settings: _Settings, shard: int, workers: int) -> int:
    """Gathers a shard's pairs from every process's piece, in line order, shuffles them (seeded
    by the shard) and writes the shard file; returns its number of pairs."""
    records = []
    for worker in range(workers):
        path = _piece(settings, worker, shard)
        values = np.fromfile(path, DTYPE)
        position = 0
        while position < len(values):
            line, src_len, tgt_len = (int(v) for v in values[position:position + 3])
            start = position + 3
            records.append((line, values[start:start + src_len],
                            values[start + src_len:start + src_len + tgt_len]))
            position = start + src_len + tgt_len
        path.unlink()
    records.sort(key=lambda record: record[0])
    order = np.random.default_rng([settings.seed, shard, 1]).permutation(len(records))
    write_shard(Path(settings.folder) / shard_name(shard), [records[i][1] for i in order],
                [records[i][2] for i in order])
    return len(records)


def check_shard(path: Path, pairs: int) -> None:
    """Raises DataError naming a shard file whose header does not say `pairs` pairs and fit its
    size (the manifest's hashes catch the rest)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            header = np.frombuffer(handle.read(HEADER * DTYPE.itemsize), DTYPE)
    except FileNotFoundError:
        raise DataError("missing shard of the prepared data", str(path)) from None
    expected = (HEADER + 2 * (pairs + 1) + (int(header[1]) + int(header[2]) if len(header) == 3
                                            else 0)) * DTYPE.itemsize
    if len(header) != HEADER or int(header[0]) != pairs or size != expected:
        raise DataError("damaged shard of the prepared data (its size or header is wrong): "
                        "prepare the data again", str(path))


def jobs_for(lines: int) -> int:
    """Processes to encode a corpus of `lines` with: one per `LINES_PER_JOB` lines, at most one
    per core this process may run on (a small corpus is encoded here: starting processes would
    cost more than it saves)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, lines // LINES_PER_JOB))
