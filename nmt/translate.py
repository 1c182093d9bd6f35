"""Translating text with a trained model folder: a Python API and the streaming `nmt translate`."""
from __future__ import annotations

import itertools
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import Iterable, Iterator, TextIO

from nmt import checkpoints, config, data, textio
from nmt.decoding import Searcher, normalized_score, score_all, search_all
from vocab import EOS

log = logging.getLogger("nmt")


@dataclass(frozen=True)
class Translation:
    text: str  # detokenized for SentencePiece models
    score: float  # sum log p / penalty(T): the search's normalized score
    log_prob: float
    ids: tuple = ()


class Translator:
    """A model folder loaded once, for translating lists or streams of lines.

    Example:
        translator = Translator("runs/ja-en")
        print(translator.translate(["彼 は 走 っ た 。"])[0][0].text)

    Args:
        model_dir: a run directory of `nmt train`.
        beam_size, alpha, length_penalty, batch_size: override the recipe's `decode` section.
        weights: "best" (dev BLEU) or "last".
    """

    def __init__(self, model_dir: str | os.PathLike, beam_size: int | None = None,
                 alpha: float | None = None, length_penalty: str | None = None,
                 batch_size: int | None = None, weights: str = "best"):
        self.model_dir = model_dir
        loaded = checkpoints.load_model(model_dir, weights)
        self.model, self.src_tokenizer, self.tgt_tokenizer = loaded[:3]
        changes = {k: v for k, v in (("beam_size", beam_size), ("alpha", alpha),
                                     ("length_penalty", length_penalty),
                                     ("batch_size", batch_size)) if v is not None}
        self.decode = config.with_changes(loaded.recipe, "decode", **changes).decode
        self.recipe = loaded.recipe
        self.searcher = Searcher(self.model, self.decode)

    def translate(self, lines: Iterable[str], nbest: int = 1) -> list[list[Translation]]:
        """The `nbest` best translations of each line, best first; blank lines give ""."""
        lines = list(lines)
        segments, owners = [], []
        for index, line in enumerate(lines):
            for piece in self._segments(line, index):
                segments.append(piece)
                owners.append(index)
        found = search_all(self.searcher, segments, self.decode.batch_size,
                           self.decode.beam_size, self.decode.alpha, nbest)
        per_line: list[list] = [[] for _ in lines]
        for owner, hyps in zip(owners, found):
            per_line[owner].append(hyps)
        return [self._join(parts, nbest) for parts in per_line]

    def translate_stream(self, lines: Iterable[str], nbest: int = 1,
                         chunk_lines: int | None = None) -> Iterator[list[Translation]]:
        """Translates an iterable of lines chunk by chunk, yielding results in input order.

        Memory stays bounded by the chunk (default: 16 decoding batches), however long the input.
        """
        for chunk in self.chunks(lines, chunk_lines):
            yield from self.translate(chunk, nbest)

    def chunks(self, lines: Iterable[str], chunk_lines: int | None = None) -> Iterator[list[str]]:
        """Consecutive lists of lines, 16 decoding batches each by default."""
        lines = iter(lines)
        while chunk := list(itertools.islice(lines, chunk_lines or 16 * self.decode.batch_size)):
            yield chunk

    def attention(self, lines: list[str], translations: list[Translation]) -> list:
        """Attention weights [T+1, S+1] of each translation over its source (EOS rows/columns
        included), by forced decoding of the translation; None for blank or over-long lines."""
        sources = [data.source_ids(self.src_tokenizer, line) for line in lines]
        usable = [i for i, (line, src) in enumerate(zip(lines, sources))
                  if self.in_one_search(line, src)]
        _, found = score_all(self.searcher, [sources[i] for i in usable],
                             [translations[i].ids for i in usable], self.decode.batch_size)
        weights: list = [None] * len(lines)
        for index, matrix in zip(usable, found):
            weights[index] = matrix
        return weights

    def in_one_search(self, line: str, source_ids) -> bool:
        """Whether a line (source_ids: with EOS) is translated by one search: not blank, not cut
        into pieces. Only such lines have attention and scores of their own."""
        return bool(line.strip()) and len(source_ids) - 1 <= self.decode.max_input_len

    def _segments(self, line: str, index: int) -> list[list[int]]:
        """Source ids (+ EOS) of a line; over-long lines are cut into pieces; blank lines: none."""
        if not line.strip():
            return []
        ids = self.src_tokenizer.encode(line)
        limit = self.decode.max_input_len
        if len(ids) > limit:
            log.warning("line %d has %d tokens: translated in pieces of %d", index + 1, len(ids),
                        limit)
        return [ids[start:start + limit] + [EOS] for start in range(0, len(ids), limit)]

    def _join(self, parts: list, nbest: int) -> list[Translation]:
        if not parts:
            return [Translation("", 0.0, 0.0)]
        if len(parts) == 1:
            return [self._translation(h) for h in parts[0][:nbest]]
        # A line cut into pieces: the best of each piece, joined (its n-best list is that one
        # entry), scored as one hypothesis: total log-prob over the penalty of the total length.
        best = [hyps[0] for hyps in parts]
        ids = tuple(i for h in best for i in h.ids)
        texts = [self.tgt_tokenizer.decode(h.ids) for h in best]
        log_prob = sum(h.log_prob for h in best)
        score = float(normalized_score(log_prob, len(ids) + len(best), self.decode.alpha,
                                       self.decode.length_penalty))
        return [Translation(" ".join(t for t in texts if t), score, log_prob, ids)]

    def _translation(self, hyp) -> Translation:
        return Translation(self.tgt_tokenizer.decode(hyp.ids), hyp.score, hyp.log_prob,
                           tuple(hyp.ids))


def translate_file(translator: Translator, source: str | None, output: str | None,
                   nbest: int = 1, scores: bool = False, alignments: bool = False) -> int:
    """`nmt translate`: lines from a file or stdin to a file (written atomically) or stdout.

    Output: one line per input line; with `nbest` > 1, that many lines "index ||| text ||| score"
    each; `scores` prefixes "score<TAB>"; `alignments` appends "<TAB>src-tgt ..." (argmax
    attention, 0-based token positions). Returns the number of input lines.
    """
    handle, name = textio.open_input(source)
    total = _count_lines(source) if source not in (None, "-") else None
    lines = textio.validate_lines(handle, name, allow_blank=True, allow_tab=True)
    start, done = time.perf_counter(), 0

    def write_all(out: TextIO) -> None:
        nonlocal done
        for chunk in translator.chunks(lines):
            found = translator.translate(chunk, nbest)
            weights = translator.attention(chunk, [t[0] for t in found]) if alignments else None
            for offset, translations in enumerate(found):
                links = _links(weights[offset]) if alignments else None
                out.write(_format(done + offset, translations, nbest, scores, links))
            out.flush()
            done += len(chunk)
            if total:
                _progress(done, total, start)

    try:
        if output in (None, "-"):
            write_all(sys.stdout)
        else:
            with textio.atomic_write(output) as out:
                write_all(out)
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
    if total:
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
    with open(path, "rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def _progress(done: int, total: int, start: float, final: bool = False) -> None:
    rate = done / max(time.perf_counter() - start, 1e-9)
    end = "\n" if final or not sys.stderr.isatty() else ""
    if final or sys.stderr.isatty():
        sys.stderr.write(f"\rtranslated {done}/{total} lines ({rate:.1f} lines/s){end}")
        sys.stderr.flush()
