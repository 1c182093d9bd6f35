"""Where a recipe's corpus files are: under the data root, fetched once if the recipe says from
where."""
from __future__ import annotations

import gzip
import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from nmt.config.options import DataConfig
from nmt.config.recipes import corpus_path
from nmt.errors import DataError
from nmt.files.textio import atomic_write


def split_files(data: DataConfig, split: str) -> tuple[Path, Path]:
    """(source file, target file) of a split, downloaded first if missing and a URL is given."""
    return ensure_file(data, corpus_path(data, split, "src")), \
        ensure_file(data, corpus_path(data, split, "tgt"))


def ensure_file(data: DataConfig, path: Path) -> Path:
    """`path`, downloaded first if missing: the file named in `data.download_names` (default:
    the same name) under `data.download_url`, its sha256 checked, unpacked if it ends in .gz."""
    if path.is_file():
        return path
    if not data.download_url:
        raise DataError("no such file (is NMT_DATA set to the folder holding "
                        f"'{data.corpus}'?)", str(path))
    remote = data.download_names.get(path.name, path.name)
    url = f"{data.download_url.rstrip('/')}/{remote}"
    try:
        with atomic_write(path, "wb") as out:
            if not remote.endswith(".gz"):
                _fetch(url, out, data.sha256.get(remote), path)
            else:
                with tempfile.TemporaryFile() as packed:
                    _fetch(url, packed, data.sha256.get(remote), path)
                    packed.seek(0)
                    with gzip.open(packed) as unpacked:
                        shutil.copyfileobj(unpacked, out, 1 << 20)
    except (gzip.BadGzipFile, EOFError, zlib.error) as err:
        raise DataError(f"download from {url} is not a complete gzip file ({err})",
                        str(path)) from None
    except (urllib.error.URLError, OSError) as err:
        raise DataError(f"missing, and downloading {url} failed ({err})", str(path)) from None
    return path


def _fetch(url: str, out, expected: str | None, path: Path) -> None:
    """Streams `url` into the open binary file `out`, checking its sha256 if one is expected."""
    digest = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=60) as response:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if expected and digest.hexdigest() != expected:
        raise DataError(f"download from {url} has sha256 {digest.hexdigest()}, "
                        f"expected {expected}", str(path))
