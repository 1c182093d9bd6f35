import fcntl
import os
import subprocess
from pathlib import Path

import pytest

from nmt.errors import DataError, OutputError
from nmt.files import textio


def write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("content, line, reason", [
    (b"ok\n\xff\xfe bad\n", 2, "invalid UTF-8"),
    (b"ok\nnul\x00here\n", 2, "NUL byte"),
    (b"ok\r\nthen\r\n", 1, "CRLF"),
    (b"a\tb\n", 1, "TAB inside a line"),
    (b"one\n\nthree\n", 2, "empty line"),
    (b"one\n   \n", 2, "empty line"),
    (b"a b c d e\n", 1, "5 tokens, more than the limit of 4"),
])
def test_bad_lines_name_file_and_line(tmp_path, content, line, reason):
    path = write(tmp_path / "x.txt", content)
    with pytest.raises(DataError) as err:
        list(textio.read_lines(path, max_tokens=4))
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert reason in str(err.value)


def test_allowed_blank_and_tab(tmp_path):
    path = write(tmp_path / "x.txt", "a\tb\n\nc\n".encode())
    assert list(textio.read_lines(path, allow_blank=True, allow_tab=True)) == ["a\tb", "", "c"]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        list(textio.read_lines(tmp_path / "nope"))


def test_last_line_without_newline(tmp_path):
    path = write(tmp_path / "x.txt", "first\nlast".encode())
    assert list(textio.read_lines(path)) == ["first", "last"]


def test_parallel_misaligned_names_the_short_file(tmp_path):
    src = write(tmp_path / "a.src", b"1\n2\n3\n")
    tgt = write(tmp_path / "a.tgt", b"1\n2\n")
    with pytest.raises(DataError) as err:
        list(textio.read_parallel(src, tgt))
    assert str(err.value).startswith(f"{tgt}:2: misaligned")
    assert textio.check_parallel(src, src) == 3


def test_parallel_empty_file(tmp_path):
    empty = write(tmp_path / "e.src", b"")
    with pytest.raises(DataError, match="empty file"):
        list(textio.read_parallel(empty, empty))


def test_parallel_limit_stops_early(tmp_path):
    src = write(tmp_path / "a.src", b"1\n2\n3\n")
    assert len(list(textio.read_parallel(src, src, limit=2))) == 2


def test_atomic_write_keeps_old_content_on_failure(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with textio.atomic_write(path) as out:
            out.write("partial")
            raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with textio.atomic_write(path) as out:
        out.write("new\n")
    assert path.read_text() == "new\n"
    plain = tmp_path / "plain.txt"
    plain.write_text("")
    assert path.stat().st_mode == plain.stat().st_mode  # the umask's permissions, not 0600


def test_atomic_path_renames_only_on_success(tmp_path):
    path = tmp_path / "w.weights.h5"
    with pytest.raises(ValueError):
        with textio.atomic_path(path, suffix=".weights.h5") as tmp:
            assert tmp.name.endswith(".weights.h5")
            tmp.write_bytes(b"half")
            raise ValueError
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_atomic_folder_appears_whole_or_not_at_all(tmp_path):
    out = tmp_path / "model"
    with pytest.raises(ValueError):
        with textio.atomic_folder(out) as tmp:
            (tmp / "half").write_text("x")
            raise ValueError
    assert list(tmp_path.iterdir()) == []  # neither the target nor the temporary folder
    with textio.atomic_folder(out) as tmp:
        assert tmp.parent == out.parent and not out.exists()
        (tmp / "whole").write_text("x")
    assert [p.name for p in out.iterdir()] == ["whole"]
    plain = tmp_path / "plain"
    plain.mkdir()
    assert out.stat().st_mode == plain.stat().st_mode  # the umask's permissions, not 0700
    # A folder with files is replaced only when the caller says so (or another process wrote
    # it since the caller checked).
    with pytest.raises(OutputError, match=f"{out}: is not empty .*nothing of this one was kept"):
        with textio.atomic_folder(out) as tmp:
            (tmp / "new").write_text("y")
    with textio.atomic_folder(out, replace=True) as tmp:
        (tmp / "new").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "plain"]
    assert [p.name for p in out.iterdir()] == ["new"]


def test_a_folder_left_by_a_killed_writer_is_removed_by_the_next_one(tmp_path):
    left = tmp_path / f".data.{_pid_of_ended()}-abc.tmp"
    (left / "shards").mkdir(parents=True)
    (left / "shards" / "big").write_bytes(b"x" * 1000)
    alive = tmp_path / f".data.{os.getpid()}-def.tmp"  # a writer still at work: kept
    alive.mkdir()
    with textio.atomic_folder(tmp_path / "data") as tmp:
        (tmp / "whole").write_text("x")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["data", alive.name])


def test_a_folder_whose_writer_still_holds_it_is_kept_whatever_its_pid(tmp_path):
    """A writer in another PID namespace (a container on the same disk) has a pid that does not
    exist here: its folder's lock, not its pid, says it is at work."""
    busy = tmp_path / f".data.{_pid_of_ended()}-abc.tmp"
    busy.mkdir()
    held = os.open(busy, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        with textio.atomic_folder(tmp_path / "data") as tmp:
            (tmp / "whole").write_text("x")
        assert busy.is_dir()
    finally:
        os.close(held)  # the writer ends: its folder is stale now
    with textio.atomic_folder(tmp_path / "data", replace=True):
        pass
    assert not busy.exists()


@pytest.mark.parametrize("kind", ["symlink to a folder", "dangling symlink", "current folder"])
def test_a_folder_that_cannot_be_replaced_is_refused_before_the_work(tmp_path, monkeypatch, kind):
    out = tmp_path / "out"
    if kind == "symlink to a folder":
        (tmp_path / "empty").mkdir()
        out.symlink_to(tmp_path / "empty")
    elif kind == "dangling symlink":
        out.symlink_to(tmp_path / "nowhere")
    else:
        out.mkdir()
        monkeypatch.chdir(out)
        out = Path(".")
    with pytest.raises(OutputError, match="symbolic link|current folder"):
        textio.check_folder_writable(out)


def _pid_of_ended() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_atomic_folder_in_an_unwritable_place_names_the_target(tmp_path):
    (tmp_path / "file").write_text("")
    target = tmp_path / "file" / "model"
    with pytest.raises(OutputError) as err:
        with textio.atomic_folder(target):
            pass
    assert str(err.value).startswith(f"{target}: cannot write")


def test_an_interrupted_folder_write_leaves_no_parents_behind(tmp_path):
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C during `nmt export --out a/b/1`
        with textio.atomic_folder(tmp_path / "a" / "b" / "1") as tmp:
            (tmp / "half").write_text("written")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    with pytest.raises(KeyboardInterrupt):
        with textio.atomic_write(tmp_path / "kept" / "new" / "f.txt") as handle:
            handle.write("half")
            raise KeyboardInterrupt
    assert [p.name for p in tmp_path.rglob("*")] == ["kept"]
