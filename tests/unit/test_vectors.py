"""Pretrained word vectors: reading the word2vec/GloVe text format, its errors, coverage."""
import gzip

import numpy as np
import pytest

from nmt.data import vectors
from nmt.errors import DataError

VOCAB = ["<pad>", "<unk>", "<s>", "</s>", "cat", "dog", "emu"]
ROWS = {"dog": [0.5, -1.0, 2.0], "fish": [1.0, 1.0, 1.0], "cat": [0.25, 0.0, -3.5]}


def vectors_text(header: bool = False) -> str:
    lines = [f"{word} " + " ".join(map(str, row)) for word, row in ROWS.items()]
    # A word listed again keeps its first vector; a special is never looked up.
    lines += ["dog 9 9 9", "<unk> 7 7 7"]
    return (f"{len(lines)} 3\n" if header else "") + "".join(line + "\n" for line in lines)


@pytest.mark.parametrize("form", ["plain", "header", "gzip"])
def test_rows_of_the_words_found_and_coverage(tmp_path, form):
    path = tmp_path / ("v.txt.gz" if form == "gzip" else "v.txt")
    text = vectors_text(header=form == "header").encode()
    path.write_bytes(gzip.compress(text) if form == "gzip" else text)
    coverage = vectors.embedding_rows(VOCAB, path, dim=3)
    assert coverage.ids == [4, 5] and coverage.words == 3  # cat, dog of cat, dog, emu
    np.testing.assert_array_equal(coverage.rows, [ROWS["cat"], ROWS["dog"]])
    assert coverage.rows.dtype == np.float32


@pytest.mark.parametrize("content, line, message", [
    (b"cat 1 2 3\ndog 1 2\n", 2, "ragged row: 2 numbers after the word, the rows above have 3"),
    (b"cat 1 2 3\ndog 1 x 3\n", 2, "number 2 of the vector is 'x', not a finite number"),
    (b"cat 1 2 3\ndog 1 nan 3\n", 2, "number 2 of the vector is 'nan'"),
    (b"cat 1 2 3 4\n", 1, "the vectors have 4 dimensions, but model.embedding_dim is 3"),
    (b"2 4\ncat 1 2 3 4\n", 1, "the header announces 4-dimensional vectors"),
    (b"3 3\ncat 1 2 3\ndog 1 2 3\n", 1, "the header announces 3 vectors, the file has 2"),
    (b"cat 1 2 3\ndo\xffg 1 2 3\n", 2, "invalid UTF-8 at byte 2"),
    (b"cat 1 2 3\n\ndog 1 2 3\n", 2, "empty line"),
    (b"cat 1 2 3\n 1 2 3\n", 2, "line starts with a space"),
])
def test_bad_files_are_one_line_errors_naming_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "v.txt"
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        vectors.embedding_rows(VOCAB, path, dim=3)
    assert str(err.value).startswith(f"{path}:{line}: {message}")
    assert "\n" not in str(err.value)


def test_the_first_bad_line_is_reported(tmp_path):
    # A non-number early, a ragged row later: the earlier line is named.
    path = tmp_path / "v.txt"
    path.write_text("cat 1 2 3\ndog 1 two 3\nemu 1 2\n")
    with pytest.raises(DataError, match=r"v.txt:2: number 2 of the vector is 'two'"):
        vectors.embedding_rows(VOCAB, path, dim=3)


def test_missing_empty_and_damaged_files(tmp_path):
    with pytest.raises(DataError, match=r"nope.txt: no such file"):
        vectors.embedding_rows(VOCAB, tmp_path / "nope.txt", dim=3)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(DataError, match=r"empty.txt: no vectors in the file"):
        vectors.embedding_rows(VOCAB, tmp_path / "empty.txt", dim=3)
    whole = gzip.compress(vectors_text().encode())
    (tmp_path / "cut.txt.gz").write_bytes(whole[:len(whole) // 2])
    with pytest.raises(DataError, match=r"cut.txt.gz: damaged gzip data"):
        vectors.embedding_rows(VOCAB, tmp_path / "cut.txt.gz", dim=3)


def test_relative_paths_are_under_the_data_root(monkeypatch, tmp_path):
    monkeypatch.setenv("NMT_DATA", str(tmp_path))
    assert vectors.vectors_path("glove/v.txt") == tmp_path / "glove" / "v.txt"
    assert vectors.vectors_path("/abs/v.txt").as_posix() == "/abs/v.txt"
