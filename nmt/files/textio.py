"""Text files in and out: validated line reading that names file and line, parallel corpora as
published, streams read once, and atomic writes that keep what they replace safe."""
from __future__ import annotations

import collections
import contextlib
import errno
import fcntl
import gc
import io
import os
import re
import select
import shutil
import stat
import sys
import tempfile
import traceback
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from nmt.errors import DataError, OutputError

BOM = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark, as Windows editors write it


def read_lines(path: str | os.PathLike, *, max_tokens: int | None = None, allow_blank: bool = False,
               allow_tab: bool = False, start: tuple[int, int] = (0, 1)) -> Iterator[str]:
    """Yields the lines of a UTF-8 text file without their newline, validating each one.

    A byte-order mark at the start is dropped. Raises DataError naming the file and line for: a
    missing file, invalid UTF-8, NUL bytes, CRLF endings, a TAB (unless `allow_tab`), a blank
    line (unless `allow_blank`), or more than `max_tokens` whitespace-separated tokens.
    `start`: (byte offset, line number) of the line to start at.
    """
    path = str(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise DataError("no such file", path) from None
    except OSError as err:
        raise DataError(f"cannot read ({err.strerror})", path) from None
    with handle:
        handle.seek(start[0])
        yield from validate_lines(handle, path, max_tokens=max_tokens, allow_blank=allow_blank,
                                  allow_tab=allow_tab, first_line=start[1])


def validate_lines(handle: Iterable[bytes], name: str, *, max_tokens: int | None = None,
                   allow_blank: bool = False, allow_tab: bool = False,
                   first_line: int = 1) -> Iterator[str]:
    """Decodes and checks the lines of a binary stream (a file, stdin, `InputLines`); see
    `read_lines`."""
    for number, raw in enumerate(handle, start=first_line):
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM):]
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


class Skipped:
    """What reading a corpus left out or changed, by reason: a count and the first line numbers."""

    SHOWN = 5  # line numbers kept per reason

    def __init__(self):
        self.read = 0  # lines read
        self.counts: collections.Counter = collections.Counter()
        self.lines: dict[str, list[int]] = collections.defaultdict(list)

    def add(self, reason: str, line: int) -> None:
        self.counts[reason] += 1
        if len(self.lines[reason]) < self.SHOWN:
            self.lines[reason].append(line)

    def merge(self, other: "Skipped") -> None:
        """Adds what another part of the same corpus left out (read in parallel)."""
        self.read += other.read
        self.counts.update(other.counts)
        for reason, lines in other.lines.items():
            self.lines[reason] = sorted(self.lines[reason] + lines)[:self.SHOWN]
        # Reasons in the order of their first line, as one reading in order would list them.
        self.counts = collections.Counter(dict(sorted(
            self.counts.items(), key=lambda item: self.lines[item[0]][:1] or [0])))

    def summary(self) -> str:
        """E.g. "3 blank (lines 4, 9, 12)"; "" if nothing was skipped."""
        parts = []
        for reason, count in self.counts.items():
            shown = ", ".join(map(str, self.lines[reason])) + (", ..." if count > self.SHOWN
                                                               else "")
            parts.append(f"{count} {reason} (line{'s' if count > 1 else ''} {shown})")
        return "; ".join(parts)


BLANK = "blank on one side or both"
SPACES = "with TABs or other whitespace, read as spaces"
_OTHER_WHITESPACE = re.compile(r"[^\S ]")


def over_limit(max_tokens: int) -> str:
    return f"over data.max_line_tokens ({max_tokens} tokens) on one side"


def numbered_pairs(src_path: str | os.PathLike, tgt_path: str | os.PathLike, *,
                   max_tokens: int | None = None, limit: int = 0,
                   skipped: Skipped | None = None,
                   start: tuple[int, int, int] | None = None) -> Iterator[tuple[int, str, str]]:
    """Yields (line number, source, target) for the usable pairs of a parallel corpus.

    Corpora are taken as published: any run of whitespace (a TAB too) is one space; a pair that
    is blank on a side, or has more than `max_tokens` tokens on a side, is left out and noted in
    `skipped`. Misaligned files, invalid UTF-8, NUL bytes and CRLF ends raise DataError, as does
    a corpus with no usable pair. `limit` > 0 reads only the first `limit` lines. `start`:
    (source byte offset, target byte offset, line number) of a line to start at, for a part of
    the corpus read apart: the checks of the whole (empty, no usable pair) are the caller's.
    """
    number = (start[2] if start else 1) - 1
    sources = read_lines(src_path, allow_blank=True, allow_tab=True,
                         start=(start[0], number + 1) if start else (0, 1))
    targets = read_lines(tgt_path, allow_blank=True, allow_tab=True,
                         start=(start[1], number + 1) if start else (0, 1))
    skipped = Skipped() if skipped is None else skipped
    read = usable = 0
    while not limit or read < limit:
        src, tgt = next(sources, None), next(targets, None)
        if src is None and tgt is None:
            break
        if src is None or tgt is None:
            short, long_ = (src_path, tgt_path) if src is None else (tgt_path, src_path)
            if number == 0:
                raise DataError("empty file", str(short))
            raise DataError(f"misaligned corpora: it ends after {number} lines but {long_} "
                            f"goes on", str(short), number)
        number, read = number + 1, read + 1
        skipped.read += 1
        if _OTHER_WHITESPACE.search(src) or _OTHER_WHITESPACE.search(tgt):
            skipped.add(SPACES, number)
        src_tokens, tgt_tokens = src.split(), tgt.split()
        if not src_tokens or not tgt_tokens:
            skipped.add(BLANK, number)
        elif max_tokens and max(len(src_tokens), len(tgt_tokens)) > max_tokens:
            skipped.add(over_limit(max_tokens), number)
        else:
            usable += 1
            yield number, " ".join(src_tokens), " ".join(tgt_tokens)
    if start:
        return
    if number == 0:
        raise DataError("empty file", str(src_path))
    if usable == 0:
        raise DataError(f"no usable pair in the first {number} lines: {skipped.summary()}",
                        str(src_path))


def read_parallel(src_path: str | os.PathLike, tgt_path: str | os.PathLike, *,
                  max_tokens: int | None = None, limit: int = 0,
                  skipped: Skipped | None = None) -> Iterator[tuple[str, str]]:
    """Yields the usable (source, target) pairs of a parallel corpus; see `numbered_pairs`."""
    for _, src, tgt in numbered_pairs(src_path, tgt_path, max_tokens=max_tokens, limit=limit,
                                      skipped=skipped):
        yield src, tgt


def check_parallel(src_path, tgt_path, *, max_tokens: int | None = None) -> int:
    """Reads a parallel corpus completely (whatever part of it is used) and returns its number of
    usable pairs; see `numbered_pairs` for what raises."""
    return sum(1 for _ in numbered_pairs(src_path, tgt_path, max_tokens=max_tokens))


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


def check_readable(path: str | os.PathLike | None) -> None:
    """Raises DataError now if the input file `path` (None or "-": stdin) cannot be read."""
    if path in (None, "-"):
        return
    if not os.path.exists(path):
        raise DataError("no such file", str(path))
    if os.path.isdir(path):
        raise DataError("is a folder; a file is expected", str(path))
    if not os.access(path, os.R_OK):
        raise DataError("cannot read (permission denied)", str(path))


class InputLines:
    """The raw lines (newline kept) of an input stream, read once, in blocks.

    A pipe or `-i /dev/stdin` can be read only once; a terminal or a pipe kept open delivers lines
    one at a time: `would_wait()` tells the reader when no further line is at hand, so that what
    has arrived can be processed instead of waited on. A regular file never waits.
    """

    BLOCK = 1 << 16

    def __init__(self, handle: BinaryIO):
        self.fd = handle.fileno()
        self.ready: collections.deque = collections.deque()
        self.partial, self.ended = b"", False

    def __iter__(self) -> "InputLines":
        return self

    def __next__(self) -> bytes:
        while not self.ready:
            if self.ended:
                raise StopIteration
            self._read_block()
        return self.ready.popleft()

    def would_wait(self) -> bool:
        if self.ready or self.ended:
            return False
        return not select.select([self.fd], [], [], 0)[0]

    def _read_block(self) -> None:
        block = os.read(self.fd, self.BLOCK)
        if not block:
            self.ended = True
            if self.partial:
                self.ready.append(self.partial)
            return
        lines = (self.partial + block).split(b"\n")
        self.partial = lines.pop()
        self.ready.extend(line + b"\n" for line in lines)


def is_regular_file(handle: BinaryIO) -> bool:
    return stat.S_ISREG(os.fstat(handle.fileno()).st_mode)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()
NEW_FILE_MODE = 0o666 & ~_UMASK  # what open() would give; mkstemp's 0600 would make it private
NEW_FOLDER_MODE = 0o777 & ~_UMASK
# Errors that mean "this cannot be written", as opposed to a bug in what writes.
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM,
                 errno.EIO, errno.ENOTDIR, errno.EISDIR, errno.EEXIST,
                 errno.ENAMETOOLONG}


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w") -> Iterator[io.IOBase]:
    """Writes to a temporary file beside `path` and renames it over `path` on success.

    If the block raises (or the process dies), `path` keeps its previous content, if any. A
    device, FIFO or socket is written into as it is; see `atomic_path`.
    """
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as handle:
            yield handle


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path beside `path`, renamed over `path` when the block succeeds.

    For libraries that write a file by name (weights); the temporary name ends in `suffix` (Keras
    insists on `.weights.h5`). If the block raises or the process dies, `path` is untouched.
    A symlink's target is replaced, not the link; an existing file keeps its permissions; a
    device, FIFO or socket is yielded itself, to be written into. Temporaries that a killed
    process left for the same path are removed. A full disk, a read-only folder and the like
    raise OutputError naming `path`.
    """
    path = Path(path)
    target = _replaced_file(path)
    if target is None:
        with reported_as_output_error(path):
            yield path
        return
    with reported_as_output_error(path), made_folders(target.parent):
        _remove_stale_temporaries(target)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.{os.getpid()}-",
                                   suffix=".tmp" + suffix)
        os.close(fd)
        os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode) if target.is_file()
                 else NEW_FILE_MODE)
        try:
            yield Path(tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


@contextlib.contextmanager
def atomic_folder(path: str | os.PathLike, replace: bool = False) -> Iterator[Path]:
    """Yields a new empty folder beside `path`, renamed to `path` when the block succeeds: the
    folder appears whole or not at all.

    The temporary folder (`.NAME.*`) has the umask's permissions (mkdtemp's 0700 would hide a
    model from others) and is removed if the block raises. An existing empty folder at `path` is
    replaced; with `replace`, any existing folder is (the caller has checked that it may go). A
    full disk, a read-only folder and the like raise OutputError naming `path`, also when what
    the block writes inside the temporary folder meets them.
    """
    path = Path(path)
    with reported_as_output_error(path), made_folders(path.parent):
        _remove_stale_temporaries(path)  # a folder left by a killed process can be large
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-",
                                    suffix=".tmp"))
        # Held while the folder is written: what tells a live writer's folder from a killed
        # one's, also for a process of another PID namespace (a container on the same disk).
        in_use = os.open(tmp, os.O_RDONLY)
        try:
            fcntl.flock(in_use, fcntl.LOCK_EX)
            os.chmod(tmp, NEW_FOLDER_MODE)
            try:
                yield tmp
            except OutputError as err:  # a file inside: the user named `path`, not the temporary
                if err.path is None or not Path(err.path).is_relative_to(tmp):
                    raise
                raise OutputError(err.reason, str(path)) from None
            if replace and path.exists():
                shutil.rmtree(path)
            try:
                os.replace(tmp, path)
            except OSError as err:
                if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                raise OutputError("is not empty (another process may have written it "
                                  "meanwhile); nothing of this one was kept", str(path)) from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            os.close(in_use)


def check_writable(path: str | os.PathLike, folder: bool = False) -> None:
    """Raises OutputError now if `path` (a file, or a folder if `folder`) could not be written
    later: found before a model is loaded or an epoch is spent, not after. The one check of every
    command's destination: a file where a folder is needed (or the reverse), permissions, a
    read-only filesystem, and a disk without a free block."""
    path = Path(path)
    if path.is_dir() != folder and path.exists():
        raise OutputError("is a folder; a file name is expected" if path.is_dir()
                          else "exists and is not a folder", str(path))
    if not folder and path.exists() and _replaced_file(path) is None:
        if not os.access(path, os.W_OK):
            raise OutputError("cannot write (permission denied)", str(path))
        return
    where = path if folder else (_replaced_file(path) or path).parent
    while not where.exists() and where != where.parent:
        where = where.parent
    with reported_as_output_error(path):
        if not where.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(where))
        fd, probe = tempfile.mkstemp(dir=where, prefix=".nmt-write-test.")
        os.close(fd)
        os.unlink(probe)
        disk = os.statvfs(where)  # an empty file fits on a full disk; a byte does not
        if disk.f_bavail == 0 and disk.f_blocks:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where))


def check_folder_writable(path: str | os.PathLike) -> None:
    """Raises OutputError naming `path` now if `atomic_folder(path)` could not write it later
    (its temporary is made beside it, so the parent must be writable too)."""
    path = Path(path)
    if path.is_symlink():  # renaming the new folder onto it would fail after the work
        raise OutputError("is a symbolic link; name the folder itself", str(path))
    if path.exists() and not path.is_dir():
        raise OutputError("is a file; a folder is expected", str(path))
    if path.is_dir() and (os.path.ismount(path) or path.resolve() == Path.cwd().resolve()):
        raise OutputError("is a mount point or the current folder, which cannot be replaced; "
                          "name a new folder inside it", str(path))
    try:
        check_writable(path.parent, folder=True)
    except OutputError as err:
        raise OutputError(err.reason, str(path)) from None


@contextlib.contextmanager
def made_folders(folder: Path) -> Iterator[None]:
    """Creates `folder` and its missing parents; if the block raises (a failed download, a
    Ctrl-C), removes those it created that are still empty, so a failure leaves no trace."""
    missing = missing_folders(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        yield
    except BaseException:
        remove_empty(missing)
        raise


def missing_folders(folder: Path) -> list[Path]:
    """`folder` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def remove_empty(folders: list[Path]) -> None:
    """Removes those of `folders` (deepest first) that are empty."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def make_folder(path: str | os.PathLike) -> Path:
    """Creates a folder (and its parents) with the umask's permissions; errors name it."""
    path = Path(path)
    with reported_as_output_error(path):
        path.mkdir(parents=True, exist_ok=True)
    return path


def _replaced_file(path: Path) -> Path | None:
    """The regular file a write to `path` replaces (a symlink's target), or None when `path` is
    a device, FIFO or socket, which is written into in place."""
    try:
        mode = os.stat(path).st_mode  # follows symlinks: /proc/self/fd/1 is a pipe or terminal
    except FileNotFoundError:
        return Path(os.path.realpath(path)) if path.is_symlink() else path
    except OSError:
        return path  # e.g. a parent that is a file: creating the temporary will report it
    if stat.S_ISDIR(mode):
        raise OutputError("is a folder; a file name is expected", str(path))
    return Path(os.path.realpath(path)) if stat.S_ISREG(mode) else None


def _remove_stale_temporaries(target: Path) -> None:
    """Deletes `.NAME.PID-*.tmp*` (files, and folders of `atomic_folder`) beside `target` whose
    writing process no longer exists (a folder: nor holds its lock)."""
    prefix = f".{target.name}."
    for tmp in target.parent.iterdir():
        name = tmp.name
        if not (name.startswith(prefix) and ".tmp" in name[len(prefix):]):
            continue
        pid = name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or _process_exists(int(pid)):
            continue
        if tmp.is_dir() and not tmp.is_symlink():
            if not _folder_in_use(tmp):  # its writer may live in another PID namespace
                shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _folder_in_use(folder: Path) -> bool:
    """Whether a live `atomic_folder` holds `folder`'s lock (the OS drops it with the process)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return True  # gone meanwhile, or not ours to judge
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(handle)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@contextlib.contextmanager
def reported_as_output_error(path: Path) -> Iterator[None]:
    """Turns "cannot write" OS errors (disk full, read-only, permissions) into one OutputError."""
    try:
        yield
    except OSError as err:
        if err.errno not in WRITE_ERRNOS:
            raise
        reason = os.strerror(err.errno)
        _release_frames(err)
        raise OutputError(f"cannot write ({reason})", str(path)) from None


def _release_frames(err: BaseException) -> None:
    """Frees what the failed write's frames hold, now and quietly: an h5py file whose flush
    failed repeats the error from its destructor, once per object, when it is collected."""
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: None
    try:
        traceback.clear_frames(err.__traceback__)
        err.__traceback__ = None
        gc.collect()
    finally:
        sys.unraisablehook = hook
