"""Where a recipe's corpus files are: under the data root, fetched once if the recipe says from
where."""
from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from nmt.config import DataConfig, corpus_path
from nmt.errors import DataError
from nmt.textio import atomic_write


def split_files(data: DataConfig, split: str) -> tuple[Path, Path]:
    """(source file, target file) of a split, downloaded first if missing and a URL is given."""
    return ensure_file(data, corpus_path(data, split, "src")), \
        ensure_file(data, corpus_path(data, split, "tgt"))


def ensure_file(data: DataConfig, path: Path) -> Path:
    if path.is_file():
        return path
    if not data.download_url:
        raise DataError("no such file (is NMT_DATA set to the folder holding "
                        f"'{data.corpus}'?)", str(path))
    url = f"{data.download_url.rstrip('/')}/{path.name}"
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_write(path, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
            expected = data.sha256.get(path.name)
            if expected and digest.hexdigest() != expected:
                raise DataError(f"download from {url} has sha256 {digest.hexdigest()}, "
                                f"expected {expected}", str(path))
    except (urllib.error.URLError, OSError) as err:
        raise DataError(f"missing, and downloading {url} failed ({err})", str(path)) from None
    return path

