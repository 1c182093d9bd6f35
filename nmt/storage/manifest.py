"""A folder's manifest: the files a model folder (or an export) is made of, with their sizes
and sha256, so that a damaged, truncated or missing file is named when the folder is used.

    DIR/manifest.json   {"format": 1, "files": {"best.weights.h5": {"size": N, "sha256": H}, ...}}
    DIR/.verified.json  {"best.weights.h5": [device, inode, size, mtime_ns], ...}: the files as
                        they were when their hashes last matched (written with the manifest,
                        and after a successful check where the folder can be written)

Checking is cheap: sizes always; a file's hash only when the file is not the one last hashed
(another device or inode: a copy; another size or mtime: changed in place), so the first load
after a copy hashes, the next ones do not. `nmt verify` hashes everything. `recipe.yaml` and
`tune.json` are left out: `nmt tune --write` (or a user) edits the decode section, and the
recipe is checked line by line when it is read. A folder without a manifest (written before
manifests existed) loads as before, unchecked.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

from nmt.errors import ModelDirError, OutputError
from nmt.files.textio import atomic_write

NAME = "manifest.json"
STAMP = ".verified.json"
FORMAT = 1
LEFT_OUT = {NAME, STAMP, "recipe.yaml", "tune.json"}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write(folder: str | os.PathLike, files: list[str]) -> None:
    """Writes the manifest of `files` (see `entries`), and the stamp of the files hashed."""
    folder = Path(folder)
    found = entries(folder, files)
    with atomic_write(folder / NAME) as handle:
        json.dump({"format": FORMAT, "files": found}, handle, indent=2)
        handle.write("\n")
    _write_stamp(folder, list(found))


def entries(folder: Path, files: list[str]) -> dict:
    """{file: {"size", "sha256"}} of `files` (relative to `folder`; a folder stands for every
    file under it; those absent are left out). A file as it was last hashed keeps its hash, so
    publishing an epoch hashes only what changed."""
    listed = sorted({str(p.relative_to(folder)) for name in files
                     for p in ([folder / name] if (folder / name).is_file()
                               else (folder / name).rglob("*")) if p.is_file()} - LEFT_OUT)
    known, stamp = _known(folder), _read_stamp(folder)
    return {name: known[name] if name in known and stamp.get(name) == _identity(
        (folder / name).stat()) else {"size": (folder / name).stat().st_size,
                                      "sha256": sha256_file(folder / name)} for name in listed}


def check(folder: str | os.PathLike, hashes: bool = False, stamp: bool = True) -> int | None:
    """Raises ModelDirError naming the first file of the manifest that is missing, of another
    size, or (hashed if `hashes` or changed since last hashed) of another sha256. Returns the
    number of files listed; None if the folder has no manifest. `stamp`: False writes no
    .verified.json (a folder that must only be read)."""
    folder = Path(folder)
    listed = read(folder)
    if listed is None:
        return None
    verified = _read_stamp(folder)
    hashed = []
    for name, entry in listed.items():
        path = folder / name
        try:
            found = path.stat()
        except FileNotFoundError:
            raise ModelDirError(f"missing (listed in {NAME}): the folder is incomplete",
                                str(path)) from None
        if found.st_size != entry["size"]:
            raise ModelDirError(f"damaged: {found.st_size} bytes, but {NAME} says "
                                f"{entry['size']} (truncated or overwritten)", str(path))
        if hashes or verified.get(name) != _identity(found):
            if sha256_file(path) != entry["sha256"]:
                raise ModelDirError(f"damaged: its sha256 differs from that in {NAME} (bit rot "
                                    f"or a changed file)", str(path))
            hashed.append(name)
    if hashed and stamp:
        # A read-only folder is hashed again next time.
        with contextlib.suppress(OSError, OutputError):
            _write_stamp(folder, list(listed), verified)
    return len(listed)


def read(folder: Path) -> dict | None:
    """The manifest's {file: {"size", "sha256"}}, or None when there is none."""
    path = folder / NAME
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        files = found["files"]
        if found["format"] != FORMAT or not all(
                isinstance(e["size"], int) and isinstance(e["sha256"], str)
                for e in files.values()):
            raise ValueError("unexpected content")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise ModelDirError(f"damaged manifest ({err})", str(path)) from None
    return files


def _known(folder: Path) -> dict:
    try:
        return read(folder) or {}
    except ModelDirError:  # a damaged manifest is replaced
        return {}


def _identity(found: os.stat_result) -> list[int]:
    return [found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns]


def _read_stamp(folder: Path) -> dict:
    try:
        stamp = json.loads((folder / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return stamp if isinstance(stamp, dict) else {}


def _write_stamp(folder: Path, names: list[str], stamp: dict | None = None) -> None:
    stamp = {**(stamp or {}), **{name: _identity((folder / name).stat()) for name in names}}
    with atomic_write(folder / STAMP) as handle:
        json.dump(stamp, handle)
