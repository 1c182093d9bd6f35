"""Word-level tokenizer: whitespace tokens, vocabulary limited by size and minimum frequency."""
from __future__ import annotations

import collections
import os
from typing import Iterable, Sequence

from vocab.specials import SPECIAL_TOKENS, UNK, content_ids

SUFFIX = ".words.txt"


class WordTokenizer:
    """Maps whitespace-separated tokens to ids; unknown tokens map to UNK.

    The vocabulary file holds one token per line, line number = id, the specials first.
    """

    def __init__(self, tokens: Sequence[str]):
        if tuple(tokens[:len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"a word vocabulary must start with {SPECIAL_TOKENS}")
        self.tokens = list(tokens)
        self.ids = {token: index for index, token in enumerate(self.tokens)}

    @classmethod
    def train(cls, lines: Iterable[str], size: int, min_freq: int = 1) -> "WordTokenizer":
        """The `size` - 4 most frequent tokens seen at least `min_freq` times (ties:
        alphabetical)."""
        counts = collections.Counter(token for line in lines for token in line.split())
        kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in SPECIAL_TOKENS),
                      key=lambda t: (-counts[t], t))
        return cls(list(SPECIAL_TOKENS) + kept[:max(size - len(SPECIAL_TOKENS), 0)])

    @classmethod
    def load(cls, prefix: str | os.PathLike) -> "WordTokenizer":
        with open(f"{prefix}{SUFFIX}", encoding="utf-8") as handle:
            return cls([line.rstrip("\n") for line in handle])

    def save(self, prefix: str | os.PathLike) -> str:
        path = f"{prefix}{SUFFIX}"
        with open(path, "w", encoding="utf-8") as handle:
            handle.write("".join(token + "\n" for token in self.tokens))
        return path

    def encode(self, line: str) -> list[int]:
        """Token ids of a line, without BOS/EOS."""
        return [self.ids.get(token, UNK) for token in line.split()]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ids: stops at EOS, drops PAD and BOS (UNK stays, as <unk>)."""
        return " ".join(self.pieces(ids))

    def pieces(self, ids: Iterable[int]) -> list[str]:
        """The tokens of ids as strings (stops at EOS; PAD, BOS dropped), e.g. heatmap labels."""
        return [self.tokens[index] for index in content_ids(ids)]

    def source_pieces(self, line: str) -> list[str]:
        """How the model sees a source line, one label per encoded id."""
        return [token if token in self.ids else SPECIAL_TOKENS[UNK] for token in line.split()]

    def __len__(self) -> int:
        return len(self.tokens)
