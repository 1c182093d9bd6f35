"""Corpus files fetched from a recipe's URL: renamed, sha256-checked, unpacked from .gz."""
import dataclasses
import gzip
import hashlib

import pytest

from nmt.config import options, recipes
from nmt.data import corpus
from nmt.errors import DataError


def published(tmp_path):
    """A folder standing in for the publisher's site (file:// URL), holding val.de.gz."""
    site = tmp_path / "site"
    site.mkdir()
    packed = gzip.compress("Ein Hund läuft.\nZwei\tKatzen.\n".encode())
    (site / "val.de.gz").write_bytes(packed)
    data = options.DataConfig(corpus=str(tmp_path / "corpus"), src="de", dev="valid",
                             download_url=site.as_uri(), download_names={"valid.de": "val.de.gz"},
                             sha256={"val.de.gz": hashlib.sha256(packed).hexdigest()})
    return data, recipes.corpus_path(data, "dev", "src")


def test_a_gzipped_published_file_is_checked_and_unpacked_under_the_local_name(tmp_path):
    data, path = published(tmp_path)
    assert corpus.ensure_file(data, path) == path
    assert path.read_text(encoding="utf-8") == "Ein Hund läuft.\nZwei\tKatzen.\n"
    assert sorted(p.name for p in path.parent.iterdir()) == ["valid.de"]  # no leftovers


def test_a_wrong_sha256_of_the_gz_leaves_nothing_behind(tmp_path):
    data, path = published(tmp_path)
    data = dataclasses.replace(data, sha256={"val.de.gz": "0" * 64})
    with pytest.raises(DataError, match="has sha256 .* expected 0000"):
        corpus.ensure_file(data, path)
    assert not path.parent.exists() or not any(path.parent.iterdir())


def test_a_damaged_gz_is_a_one_line_error(tmp_path):
    data, path = published(tmp_path)
    (tmp_path / "site" / "val.de.gz").write_bytes(b"not gzip at all")
    data = dataclasses.replace(data, sha256={})
    with pytest.raises(DataError, match="not a complete gzip file") as err:
        corpus.ensure_file(data, path)
    assert "\n" not in str(err.value) and not path.exists()
