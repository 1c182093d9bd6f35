"""Vocabularies and tokenization: strings <-> ids. Pure Python + sentencepiece, no TensorFlow.

Every tokenizer kind shares the special ids of `vocab.specials` (PAD=0, UNK=1, BOS=2, EOS=3) and
this protocol:

    encode(line) -> list[int]       ids without BOS/EOS
    decode(ids) -> str              stops at EOS, drops PAD
    pieces(ids) -> list[str]        one label per id, for attention plots
    source_pieces(line) -> list[str]
    len(tokenizer)                  vocabulary size
    save(prefix) -> path            load(prefix) reads it back
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Protocol, Sequence

from vocab import subwords, words
from vocab.specials import BOS, EOS, PAD, UNK  # noqa: F401  (re-exported)

KINDS = ("words", "sentencepiece")


class Tokenizer(Protocol):
    def encode(self, line: str) -> list[int]: ...
    def decode(self, ids: Sequence[int]) -> str: ...
    def pieces(self, ids: Sequence[int]) -> list[str]: ...
    def source_pieces(self, line: str) -> list[str]: ...
    def save(self, prefix: str | os.PathLike) -> str: ...
    def __len__(self) -> int: ...


def train(kind: str, lines: Iterable[str], size: int, *, min_freq: int = 1,
          model_type: str = "unigram", character_coverage: float = 1.0) -> Tokenizer:
    """Trains a tokenizer of `kind` ("words" or "sentencepiece") on an iterable of lines."""
    if kind == "words":
        return words.WordTokenizer.train(lines, size, min_freq)
    if kind == "sentencepiece":
        return subwords.SentencePieceTokenizer.train(lines, size, model_type, character_coverage)
    raise ValueError(f"unknown vocabulary kind {kind!r}; expected one of {KINDS}")


def load(prefix: str | os.PathLike) -> Tokenizer:
    """Loads the tokenizer saved at `prefix`, whichever kind it is."""
    if Path(f"{prefix}{words.SUFFIX}").is_file():
        return words.WordTokenizer.load(prefix)
    if Path(f"{prefix}{subwords.SUFFIX}").is_file():
        return subwords.SentencePieceTokenizer.load(prefix)
    raise FileNotFoundError(f"no vocabulary at {prefix}{words.SUFFIX} or {prefix}{subwords.SUFFIX}")
