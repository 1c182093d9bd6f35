"""Pretrained word vectors in the word2vec / GloVe text format, as initial embedding rows.

    COUNT DIM               optional header line (word2vec)
    word v1 v2 ... vDIM     one word per line, fields separated by single spaces

A file ending in `.gz` is read through gzip. The whole file is checked, but only the vectors of
vocabulary words are kept: memory follows the vocabulary, not the file. Words match exactly
(no case folding); a word listed twice keeps its first vector.
"""
from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

import numpy as np

from nmt.config import recipes
from nmt.errors import DataError
from vocab.specials import SPECIAL_TOKENS


class Coverage(NamedTuple):
    """The embedding rows a vectors file gives: `rows[i]` is the vector of vocabulary id
    `ids[i]`."""
    ids: list
    rows: np.ndarray  # float32 [len(ids), dim]
    words: int  # vocabulary entries looked up (the specials are not)


def vectors_path(path: str) -> Path:
    """A recipe's vectors path: absolute, `~`, or relative to the data root (as data.corpus)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else recipes.data_root() / path


def embedding_rows(tokens: Sequence[str], path: str | os.PathLike, dim: int) -> Coverage:
    """The rows of `path` for the vocabulary `tokens` (index = id); specials keep their own rows."""
    ids = {token: index for index, token in enumerate(tokens)
           if index >= len(SPECIAL_TOKENS) and token not in SPECIAL_TOKENS}
    found = read_vectors(path, set(ids), dim)
    order = sorted(found, key=ids.__getitem__)
    rows = np.stack([found[word] for word in order]) if order else np.zeros((0, dim), "float32")
    return Coverage([ids[word] for word in order], rows, len(ids))


def read_vectors(path: str | os.PathLike, wanted: set, dim: int) -> dict:
    """word -> float32 [dim] vector for the words of `wanted` that the file lists.

    Raises DataError naming the file and line for a missing or unreadable file, invalid UTF-8, a
    row whose width differs from `dim` (the model's embedding_dim) or from the rows above, a field
    that is not a finite number, and a header that does not match the rows.
    """
    name = str(path)
    found, rows, header = {}, 0, None
    pending = []  # (line number, word, numbers) not parsed yet: numpy parses a block at once
    for number, line in _lines(path):
        word, _, numbers = line.rstrip().partition(" ")
        if number == 1 and all(field.isdigit() for field in (word, numbers)):
            header = int(word), int(numbers)
            if header[1] != dim:
                raise DataError(f"the header announces {header[1]}-dimensional vectors, but "
                                f"model.embedding_dim is {dim}", name, number)
            continue
        width = numbers.count(" ") + 1 if numbers else 0
        if not word or width != dim:
            _parse(pending, wanted, found, name)  # an earlier bad line is reported first
            if not word:
                raise DataError("line starts with a space" if numbers else "empty line", name,
                                number)
            if rows == 0:
                raise DataError(f"the vectors have {width} dimensions, but model.embedding_dim "
                                f"is {dim}", name, number)
            raise DataError(f"ragged row: {width} numbers after the word, the rows above have "
                            f"{dim}", name, number)
        rows += 1
        pending.append((number, word, numbers))
        if len(pending) == _BLOCK:
            _parse(pending, wanted, found, name)
    _parse(pending, wanted, found, name)
    if rows == 0:
        raise DataError("no vectors in the file", name)
    if header is not None and header[0] != rows:
        raise DataError(f"the header announces {header[0]} vectors, the file has {rows}", name, 1)
    return found


_BLOCK = 4096  # lines parsed by one numpy call


def _parse(pending: list, wanted: set, found: dict, name: str) -> None:
    """Parses a block of rows of checked width, keeps the wanted ones, and empties `pending`."""
    if not pending:
        return
    try:
        block = np.loadtxt([numbers for _, _, numbers in pending], dtype=np.float32,
                           delimiter=" ", comments=None, ndmin=2)
        valid = bool(np.isfinite(block).all())
    except ValueError:
        valid = False
    if not valid:  # find the first bad field, for the message
        for number, _, numbers in pending:
            for column, field in enumerate(numbers.split(" "), start=1):
                try:
                    if np.isfinite(np.float32(field)):
                        continue
                except ValueError:
                    pass
                raise DataError(f"number {column} of the vector is {field!r}, not a finite "
                                f"number", name, number)
    for (_, word, _), row in zip(pending, block):
        if word in wanted and word not in found:
            found[word] = row.copy()
    pending.clear()


def _lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """(line number, text without the newline) of a UTF-8 file, gzip-compressed or not."""
    name = str(path)
    opener = gzip.open if name.endswith(".gz") else open
    number = 0
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                try:
                    yield number, raw.decode("utf-8").rstrip("\r\n")
                except UnicodeDecodeError as err:
                    raise DataError(f"invalid UTF-8 at byte {err.start}", name, number) from None
    except FileNotFoundError:
        raise DataError("no such file", name) from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"damaged gzip data after line {number} ({err})", name) from None
    except OSError as err:
        raise DataError(f"cannot read ({err.strerror or err})", name) from None
