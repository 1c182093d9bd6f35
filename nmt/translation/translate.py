"""Translating text with a trained model folder: a Python API and the streaming `nmt translate`."""
from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TextIO

import numpy as np

from nmt.config import recipes
from nmt.config.options import DecodeConfig
from nmt.data import batching
from nmt.errors import ModelDirError
from nmt.files import textio
from nmt.search import rules
from nmt.search.decoding import Searcher, normalized_score, score_all, search_all
from nmt.search.inference import Ensemble
from nmt.storage import modeldir
from nmt.system import termination
from nmt.translation import resume as resume_output
from vocab import EOS

log = logging.getLogger("nmt")


@dataclass(frozen=True)
class Translation:
    text: str  # detokenized for SentencePiece models
    score: float  # sum log p / penalty(T): the search's normalized score
    log_prob: float
    ids: tuple = ()


class Translator:
    """One model folder, or several as an ensemble, loaded once for translating lines or streams.

    Example:
        translator = Translator("runs/ja-en")
        print(translator.translate(["彼 は 走 っ た 。"])[0][0].text)

    Args:
        model_dir: a run directory of `nmt train` (or a model folder of `nmt average`); a list of
            several makes an ensemble (`nmt.search.inference.Ensemble`): their log-probs are
            averaged at each step, each reads the source in its own vocabulary; all must share the
            target vocabulary. The first folder's recipe gives the decoding defaults.
        beam_size, alpha, length_penalty, batch_size, precision: override the recipe's `decode`
            section.
        weights: "best" (dev BLEU) or "last".

    `self.decode` is the decoding configuration; `translate` takes overrides of it per call.
    The search runs in `decode.precision` (the weights are cast once, here); forced scoring
    (`score`, `attention`, the error analysis) always in float32, since it compares scores.
    """

    def __init__(self, model_dir: str | os.PathLike | Sequence[str | os.PathLike],
                 beam_size: int | None = None, alpha: float | None = None,
                 length_penalty: str | None = None, batch_size: int | None = None,
                 weights: str = "best", precision: str | None = None):
        dirs = [model_dir] if isinstance(model_dir, (str, os.PathLike)) else list(model_dir)
        self.model_dir, self.model_dirs, self.weights = dirs[0], dirs, weights
        first = modeldir.load_model(dirs[0], weights, precision)
        precision = precision or first.recipe.decode.precision
        members = [first] + [modeldir.load_model(d, weights, precision) for d in dirs[1:]]
        check_same_target_vocabulary(dirs, [m.tgt_tokenizer for m in members])
        self.src_tokenizers = [m.src_tokenizer for m in members]
        self.src_tokenizer, self.tgt_tokenizer = members[0].src_tokenizer, members[0].tgt_tokenizer
        self.model = _combined([m.model for m in members])
        changes = {k: v for k, v in (("beam_size", beam_size), ("alpha", alpha),
                                     ("length_penalty", length_penalty),
                                     ("batch_size", batch_size), ("precision", precision))
                   if v is not None}
        self.recipe = members[0].recipe
        self.decode = recipes.with_changes(self.recipe, "decode", **changes).decode
        self.searcher = Searcher(self.model)
        self._scorer = self.searcher if precision == "float32" else None

    def source_ids(self, line: str):
        """The model input of a line (ids + EOS); an ensemble's: one id list per member."""
        ids = [batching.source_ids(t, line) for t in self.src_tokenizers]
        return ids[0] if len(ids) == 1 else tuple(ids)

    def config(self, **overrides) -> DecodeConfig:
        """The decoding configuration with per-call `overrides` (e.g. beam_size=1), checked as a
        recipe's decode section is (an unknown key or penalty name is a ConfigError)."""
        if not overrides:
            return self.decode
        values = {**dataclasses.asdict(self.decode), **overrides}
        return recipes.recipe_from_dict({"decode": values}, "decode overrides").decode

    def translate(self, lines: Iterable[str], nbest: int = 1,
                  **overrides) -> list[list[Translation]]:
        """The `nbest` best translations of each line, best first; blank lines give "".

        `overrides`: DecodeConfig fields for this call only (beam_size, alpha, length_penalty...).
        """
        decode = self.config(**overrides)
        lines = list(lines)
        segments, counts = self._segments(lines, decode.max_input_len)
        owners = np.repeat(np.arange(len(lines)), counts)
        found = search_all(self.searcher, segments, decode, nbest)
        per_line: list[list] = [[] for _ in lines]
        for owner, hyps in zip(owners, found):
            per_line[owner].append(hyps)
        return [self._join(parts, nbest, decode) for parts in per_line]

    def score(self, sources: Sequence[str], targets: Sequence[str], **overrides):
        """Forced scores of (source line, target line) pairs: (hypotheses, attention) as
        `nmt.search.decoding.score_all` gives them, with the search's own normalized score."""
        decode = self.config(**overrides)
        return score_all(self.scorer, [self.source_ids(s) for s in sources],
                         [self.tgt_tokenizer.encode(t) for t in targets], decode)

    def translate_stream(self, lines: Iterable[str], nbest: int = 1,
                         chunk_lines: int | None = None,
                         **overrides) -> Iterator[list[Translation]]:
        """Translates an iterable of lines chunk by chunk, yielding results in input order.

        Memory stays bounded by the chunk (default: 16 decoding batches), however long the input.
        """
        for chunk in self.chunks(lines, chunk_lines):
            yield from self.translate(chunk, nbest, **overrides)

    def chunks(self, lines: Iterable[str], chunk_lines: int | None = None,
               would_wait: Callable[[], bool] | None = None) -> Iterator[list[str]]:
        """Consecutive lists of lines, 16 decoding batches each by default; a shorter one as soon
        as `would_wait()` says the next line has not arrived yet (a terminal, a pipe kept open)."""
        size, chunk = chunk_lines or 16 * self.decode.batch_size, []
        for line in lines:
            chunk.append(line)
            if len(chunk) == size or (would_wait is not None and would_wait()):
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def attention(self, lines: list[str], translations: list[Translation]) -> list:
        """Attention weights [T+1, S+1] of each translation over its source (EOS rows/columns
        included), by forced decoding of the translation; None for blank or over-long lines."""
        sources = [self.source_ids(line) for line in lines]
        usable = [i for i, (line, src) in enumerate(zip(lines, sources))
                  if self.in_one_search(line, src)]
        _, found = score_all(self.scorer, [sources[i] for i in usable],
                             [translations[i].ids for i in usable], self.decode)
        weights: list = [None] * len(lines)
        for index, matrix in zip(usable, found):
            weights[index] = matrix
        return weights

    def in_one_search(self, line: str, source_ids) -> bool:
        """Whether a line (source_ids: from `source_ids`) is translated by one search: not blank,
        not cut into pieces. Only such lines have attention and scores of their own."""
        return rules.piece_counts(batching.source_length(source_ids) - 1,
                                  rules.blank_lines([line])[0], self.decode.max_input_len) == 1

    @property
    def scorer(self) -> Searcher:
        """The float32 searcher of the same weights, for forced scoring (loaded when first
        needed)."""
        if self._scorer is None:
            self._scorer = Searcher(_combined(
                [modeldir.load_model(d, self.weights, "float32").model
                 for d in self.model_dirs]))
        return self._scorer

    def _segments(self, lines: list[str], limit: int) -> tuple[list, np.ndarray]:
        """Source ids (+ EOS) of every line's segments, in line order, and each line's segment
        count: blank lines have none, over-long ones several (`rules.piece_counts`)."""
        blank = rules.blank_lines(lines)
        members = [[[] if empty else t.encode(line) for line, empty in zip(lines, blank)]
                   for t in self.src_tokenizers]
        lengths = np.array([[len(ids) for ids in m] for m in members], np.int64).reshape(
            len(members), len(lines))
        longest = lengths.max(axis=0)
        counts = rules.piece_counts(longest, blank, limit)
        for index in np.flatnonzero(counts > 1):
            log.warning("line %d has %d tokens: translated in pieces of %d", index + 1,
                        longest[index], limit)
        pieces = []
        for ids_of_lines, length in zip(members, lengths):
            sizes = iter(rules.piece_lengths(length, longest, counts, limit).tolist())
            pieces.append([segment for ids, count in zip(ids_of_lines, counts)
                           for segment in _cut(ids, [next(sizes) for _ in range(count)])])
        segments = pieces[0] if len(members) == 1 else list(zip(*pieces))
        return segments, counts

    def _join(self, parts: list, nbest: int, decode: DecodeConfig) -> list[Translation]:
        if not parts:  # a blank line: as many blank entries as asked for
            return [Translation("", 0.0, 0.0)] * nbest
        if len(parts) == 1:
            return [self._translation(h) for h in parts[0][:nbest]]
        # A line cut into pieces: the best of each piece, joined (its n-best list is that one
        # entry), scored as one hypothesis.
        best = [hyps[0] for hyps in parts]
        log_prob = rules.joined_log_prob([h.log_prob for h in best])
        score = float(normalized_score(log_prob, rules.joined_length(
            np.array([len(h.ids) for h in best])), decode.alpha, decode.length_penalty))
        text = rules.joined_text([self.tgt_tokenizer.decode(h.ids) for h in best])
        return [Translation(text, score, log_prob, tuple(i for h in best for i in h.ids))]

    def _translation(self, hyp) -> Translation:
        return Translation(self.tgt_tokenizer.decode(hyp.ids), hyp.score, hyp.log_prob,
                           tuple(hyp.ids))


def _cut(ids: list, sizes: list) -> Iterator[list]:
    """`ids` in consecutive pieces of `sizes` ids, each followed by EOS."""
    start = 0
    for size in sizes:
        yield ids[start:start + size] + [EOS]
        start += size


def _combined(models: list):
    """One model, or the ensemble of several."""
    return models[0] if len(models) == 1 else Ensemble(models)


def check_same_target_vocabulary(dirs: Sequence, tokenizers: Sequence) -> None:
    """Ensemble members must give every target id the same meaning; the first that does not is
    named."""
    def entries(tokenizer):
        return [tokenizer.pieces([index]) for index in range(len(tokenizer))]

    first = entries(tokenizers[0])
    for folder, tokenizer in zip(dirs[1:], tokenizers[1:]):
        if entries(tokenizer) != first:
            raise ModelDirError(f"its target vocabulary differs from that of {dirs[0]}; ensemble "
                                f"members must share it", str(folder))


def translate_file(translator: Translator, source: str | None, output: str | None,
                   nbest: int = 1, scores: bool = False, alignments: bool = False,
                   resume: bool = False) -> int:
    """`nmt translate`: lines from a file or stdin to a file (written atomically) or stdout.

    Output: one line per input line; with `nbest` > 1, that many lines "index ||| text ||| score"
    each; `scores` prefixes "score<TAB>"; `alignments` appends "<TAB>src-tgt ..." (argmax
    attention, 0-based token positions). `resume`: the output file is written in place and an
    interrupted run's is continued (`nmt.translation.resume`). Returns the number of input
    lines.
    """
    progress = None
    if resume:
        progress = resume_output.Progress(output, resume_output.settings(
            translator, source, nbest, scores, alignments))
        skipped = progress.start()
    handle, name = textio.open_input(source)
    from_file = source not in (None, "-")
    # Only a regular file can be read twice (to count its lines); a pipe is read once.
    total = _count_lines(source) if from_file and textio.is_regular_file(handle) else None
    stream = textio.InputLines(handle)
    lines = textio.validate_lines(stream, name, allow_blank=True, allow_tab=True)
    start, done = time.perf_counter(), 0
    if progress:  # the lines of complete chunks: read (and checked) again, not translated
        done = sum(1 for _ in itertools.islice(lines, skipped))

    def write_all(out: TextIO) -> None:
        nonlocal done
        for chunk in translator.chunks(lines, would_wait=stream.would_wait):
            # A stop that came while TensorFlow ran (its handler defers raising there, and
            # a busy search can stay there for seconds): here, between chunks.
            termination.raise_if_stop_requested()
            found = translator.translate(chunk, nbest)
            weights = translator.attention(chunk, [t[0] for t in found]) if alignments else None
            for offset, translations in enumerate(found):
                links = _links(weights[offset]) if alignments else None
                out.write(_format(done + offset, translations, nbest, scores, links))
            out.flush()
            done += len(chunk)
            if progress:
                os.fsync(out.fileno())  # the bytes are on disk before the record counts them
                progress.advance(done, os.fstat(out.fileno()).st_size)
            if total:
                _progress(done, total, start)

    try:
        if output in (None, "-"):
            write_all(sys.stdout)
        elif progress:
            with textio.reported_as_output_error(Path(output)):
                with open(output, "a", encoding="utf-8") as out:
                    write_all(out)
            progress.finish()
        else:
            with textio.atomic_write(output) as out:
                write_all(out)
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
    if from_file:
        _progress(done, total, start, final=True)
    return done


def _format(index: int, translations: list[Translation], nbest: int, scores: bool,
            links: str | None) -> str:
    if nbest > 1:
        return "".join(f"{index} ||| {t.text} ||| {t.score:.4f}\n" for t in translations)
    best = translations[0]
    text = f"{best.score:.4f}\t{best.text}" if scores else best.text
    if links is not None:
        text += "\t" + links
    return text + "\n"


def _links(weights) -> str:
    """"src-tgt" pairs: each output token linked to its most attended source token (the EOS row
    and column left out, so every link names a real token)."""
    if weights is None:
        return ""
    return " ".join(f"{row[:-1].argmax()}-{t}" for t, row in enumerate(weights[:-1]))


def _count_lines(path: str) -> int:
    """Lines as they are read: a last line without a newline counts too."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            count, last = count + chunk.count(b"\n"), chunk[-1:]
    return count + (last != b"\n")


def _progress(done: int, total: int | None, start: float, final: bool = False) -> None:
    rate = done / max(time.perf_counter() - start, 1e-9)
    end = "\n" if final or not sys.stderr.isatty() else ""
    count = f"{done}/{total}" if total is not None else f"{done}"
    if final or sys.stderr.isatty():
        sys.stderr.write(f"\rtranslated {count} lines ({rate:.1f} lines/s){end}")
        sys.stderr.flush()
