"""The content-addressed cache."""

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bootstrap.cache import Cache, sha256_file, write_atomic
from bootstrap.errors import BootstrapError, ChecksumError


def test_adopt_stores_by_sha256(cache: Cache) -> None:
    tmp = cache.temp("blob")
    tmp.write_bytes(b"hello\n")
    digest = hashlib.sha256(b"hello\n").hexdigest()
    path = cache.adopt(tmp, digest, "hello")
    assert path == cache.blob(digest)
    assert path.read_bytes() == b"hello\n"
    assert sha256_file(path) == digest
    assert cache.has(digest)
    assert cache.has(digest, 6)
    assert not cache.has(digest, 7)
    assert not tmp.exists()


def test_adopt_refuses_a_mismatch(cache: Cache) -> None:
    tmp = cache.temp("blob")
    tmp.write_bytes(b"evil\n")
    with pytest.raises(ChecksumError, match="checksum mismatch for thing"):
        cache.adopt(tmp, "0" * 64, "thing")
    assert not tmp.exists()
    assert not cache.has("0" * 64)


def test_temporary_paths_are_unique_across_threads(cache: Cache) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        paths = list(pool.map(lambda _: cache.temp("index"), range(500)))
    assert len(set(paths)) == len(paths)
    assert all(p.parent == cache.root / "tmp" for p in paths)


def test_unwritable_cache_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BootstrapError, match="cannot use cache directory"):
        Cache(blocker / "cache").ensure()


def test_write_atomic(tmp_path: Path) -> None:
    target = tmp_path / "out"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_locks_are_separate_per_name(cache: Cache) -> None:
    with cache.locked("a"), cache.locked("b"):
        assert (cache.root / "locks" / "a").exists()
