"""Text files in and out: validated line reading that names file and line, and atomic writes."""
from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

from nmt.errors import DataError


def read_lines(path: str | os.PathLike, *, max_tokens: int | None = None, allow_blank: bool = False,
               allow_tab: bool = False) -> Iterator[str]:
    """Yields the lines of a UTF-8 text file without their newline, validating each one.

    Raises DataError naming the file and line for: a missing file, invalid UTF-8, NUL bytes, CRLF
    endings, a TAB (unless `allow_tab`), a blank line (unless `allow_blank`), or more than
    `max_tokens` whitespace-separated tokens.
    """
    path = str(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise DataError("no such file", path) from None
    except OSError as err:
        raise DataError(f"cannot read ({err.strerror})", path) from None
    with handle:
        yield from validate_lines(handle, path, max_tokens=max_tokens, allow_blank=allow_blank,
                                  allow_tab=allow_tab)


def validate_lines(handle: BinaryIO, name: str, *, max_tokens: int | None = None,
                   allow_blank: bool = False, allow_tab: bool = False) -> Iterator[str]:
    """Decodes and checks the lines of a binary stream (a file or stdin); see `read_lines`."""
    for number, raw in enumerate(handle, start=1):
        if raw.endswith(b"\r\n"):
            raise DataError("CRLF line ending (convert the file with dos2unix)", name, number)
        if b"\0" in raw:
            raise DataError("NUL byte in line", name, number)
        try:
            line = raw.decode("utf-8").rstrip("\n")
        except UnicodeDecodeError as err:
            raise DataError(f"invalid UTF-8 at byte {err.start}", name, number) from None
        if not allow_tab and "\t" in line:
            raise DataError("TAB inside a line (expected one sentence per line, not columns)",
                            name, number)
        if not allow_blank and not line.strip():
            raise DataError("empty line", name, number)
        if max_tokens is not None:
            count = len(line.split())
            if count > max_tokens:
                raise DataError(f"line has {count} tokens, more than the limit of {max_tokens}",
                                name, number)
        yield line


def read_parallel(src_path: str | os.PathLike, tgt_path: str | os.PathLike, *,
                  max_tokens: int | None = None, limit: int = 0) -> Iterator[tuple[str, str]]:
    """Yields aligned (source, target) line pairs; misaligned files raise DataError.

    `limit` > 0 stops after that many pairs (without checking the rest for alignment).
    """
    sources = read_lines(src_path, max_tokens=max_tokens)
    targets = read_lines(tgt_path, max_tokens=max_tokens)
    count = 0
    while not limit or count < limit:
        src = next(sources, None)
        tgt = next(targets, None)
        if src is None and tgt is None:
            break
        if src is None or tgt is None:
            short, long_ = (src_path, tgt_path) if src is None else (tgt_path, src_path)
            if count == 0:
                raise DataError("empty file", str(short))
            raise DataError(f"misaligned corpora: it ends after {count} lines but {long_} "
                            f"goes on", str(short), count)
        count += 1
        yield src, tgt
    if count == 0:
        raise DataError("empty file", str(src_path))


def count_parallel(src_path, tgt_path, *, max_tokens: int | None = None, limit: int = 0) -> int:
    """Validates a parallel corpus completely and returns its number of pairs."""
    return sum(1 for _ in read_parallel(src_path, tgt_path, max_tokens=max_tokens, limit=limit))


def open_input(path: str | None) -> tuple[BinaryIO, str]:
    """A binary stream for `path`, or stdin for None / "-"; and its name for error messages."""
    if path in (None, "-"):
        return sys.stdin.buffer, "<stdin>"
    try:
        return open(path, "rb"), str(path)
    except FileNotFoundError:
        raise DataError("no such file", str(path)) from None
    except OSError as err:
        raise DataError(f"cannot read ({err.strerror})", str(path)) from None


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[io.IOBase]:
    """Writes to a temporary file beside `path` and renames it over `path` on success.

    If the block raises (or the process dies), `path` keeps its previous content, if any.
    """
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path beside `path`, renamed over `path` when the block succeeds.

    For libraries that write a file by name (weights); the temporary name ends in `suffix` (Keras
    insists on `.weights.h5`). If the block raises or the process dies, `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + suffix)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would make outputs private to their writer
    try:
        yield Path(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
