"""What the cache finds where one of its files or directories belongs that is not one (a link to elsewhere, a fifo,
a directory), as a cache restored from elsewhere can hold: never followed, never waited on, removed and made
again; nothing outside the cache is read, written or removed through it."""

import hashlib
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.deb.release import _Slot
from bootstrap.host import prune
from bootstrap.host.cache import Cache, read_derived, write_atomic, write_derived, write_entry
from bootstrap.rpm import repo as rpm_repo

BLOB = b"a cached package\n"
SHA = hashlib.sha256(BLOB).hexdigest()


def _outside(tmp_path: Path) -> Path:
    """A directory of the user's, outside the cache, with a file in it (what a hostile link points at)."""
    outside = tmp_path / "documents"
    outside.mkdir()
    (outside / "notes.txt").write_text("mine\n")
    os.utime(outside / "notes.txt", (0, 0))  # older than anything the cache holds
    return outside


def _soon(call: Callable[[], object], seconds: float = 10.0) -> object:
    """`call()`, which must return within `seconds` (a fifo opened for reading would block it for ever)."""
    out: list[object] = []
    worker = threading.Thread(target=lambda: out.append(call()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), "it waits on a fifo"
    return out[0]


@pytest.mark.parametrize("area", ["parsed", "gzip", "expanded", "verdicts", "sha256", "locks"])
def test_an_area_that_is_a_link_is_replaced_never_pruned_through(area: str, tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    root = tmp_path / "cache"
    root.mkdir()
    (root / area).symlink_to(outside)
    cache = Cache(root).ensure()
    assert not (root / area).is_symlink() and (root / area).is_dir()
    write_entry(cache.area("parsed") / "entry", b"x" * 1000)
    cache.ensure()
    done = prune.prune(cache, 0)
    assert done.removed >= 1
    assert sorted(p.name for p in outside.iterdir()) == ["notes.txt"], "nothing outside the cache was touched"


def test_prune_never_lists_through_an_area_that_is_a_link(tmp_path: Path) -> None:
    """Even before a build replaced it (`bootstrap cache prune` on a cache as it was restored)."""
    outside = _outside(tmp_path)
    cache = Cache(tmp_path / "cache")
    (cache.root / "sha256").mkdir(parents=True)
    (cache.root / "gzip").symlink_to(outside)
    assert prune.prune(cache, 0).removed == 0
    assert (outside / "notes.txt").read_text() == "mine\n"
    assert [a.files for a in prune.usage(cache) if a.name == "gzip"] == [0]


@pytest.mark.parametrize("kind", ["fifo", "directory", "link"])
def test_a_blob_that_is_not_a_file_is_removed_and_fetched_again(kind: str, tmp_path: Path) -> None:
    outside = _outside(tmp_path)
    cache = Cache(tmp_path / "cache").ensure()
    blob = cache.blob(SHA)
    if kind == "fifo":
        os.mkfifo(blob)
    elif kind == "directory":
        (blob / "inside").mkdir(parents=True)
    else:
        (outside / "same").write_bytes(BLOB)
        blob.symlink_to(outside / "same")
    assert _soon(lambda: cache.has(SHA, len(BLOB))) is False
    assert not os.path.lexists(blob)

    def download(tmp: Path) -> str:
        tmp.write_bytes(BLOB)
        return "the mirror"

    assert cache.obtain(SHA, len(BLOB), download).read_bytes() == BLOB
    assert sorted(p.name for p in outside.iterdir()) == (["notes.txt", "same"] if kind == "link" else ["notes.txt"])


@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_a_derived_file_that_is_not_a_file_is_made_again(kind: str, tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache").ensure()
    path = cache.area("parsed") / "entry"
    os.mkfifo(path) if kind == "fifo" else path.mkdir()
    assert _soon(lambda: read_derived(path, SHA)) is None
    write_derived(path, SHA, [b"parsed"])
    assert read_derived(path, SHA) == [b"parsed"]


def test_a_file_of_the_cache_is_written_where_a_directory_was(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache").ensure()
    path = cache.area("gzip") / "member"
    (path / "inside").mkdir(parents=True)
    write_entry(path, b"member")
    assert path.read_bytes() == b"member"


def test_a_file_outside_the_cache_never_replaces_a_directory(tmp_path: Path) -> None:
    """`write_atomic` writes the user's outputs too (`bootstrap lock -o PATH`): a directory there is theirs."""
    (tmp_path / "lock.json" / "inside").mkdir(parents=True)
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path / "lock.json", b"{}")
    assert (tmp_path / "lock.json" / "inside").is_dir()


@pytest.mark.parametrize("kind", ["fifo", "link", "directory"])
def test_a_lock_file_that_is_not_one_is_made_again(kind: str, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    cache = Cache(tmp_path / "cache").ensure()
    lock = cache.area("locks") / "prune"
    if kind == "fifo":
        os.mkfifo(lock)
    elif kind == "link":
        lock.symlink_to(outside)
    else:
        lock.mkdir()

    def take() -> bool:
        with cache.locked("prune"):
            return True

    assert _soon(take) is True
    assert lock.is_file() and not lock.is_symlink() and not outside.exists()


@pytest.mark.parametrize("family", ["deb", "rpm"])
@pytest.mark.parametrize("kind", ["link", "fifo state"])
def test_a_kept_index_slot_never_reaches_outside_nor_waits(family: str, kind: str, tmp_path: Path) -> None:
    """The slot of a signed index kept against rollback (releases/<h>, repomd/<h>)."""
    outside = _outside(tmp_path)
    cache = Cache(tmp_path / "cache").ensure()
    url = "http://127.0.0.1:9/dists/x/InRelease"
    slot = _Slot(cache, url) if family == "deb" else rpm_repo._Slot(cache, url)
    area = cache.area("releases" if family == "deb" else "repomd")
    name = hashlib.sha256(url.encode()).hexdigest()[:32]
    if kind == "link":
        (area / name).symlink_to(outside)
        (outside / "state").write_text(json.dumps({"date": 1, "stamp": 1}))
    else:
        (area / name).mkdir()
        os.mkfifo(area / name / "state")
    assert _soon(slot.meta) == {}
    if family == "rpm":
        assert isinstance(slot, rpm_repo._Slot)
        slot.keep(b"<repomd/>", b"signature", 5)
        assert slot.known() == 5
    assert not (area / name).is_symlink()
    assert sorted(p.name for p in outside.iterdir()) == (["notes.txt", "state"] if kind == "link" else ["notes.txt"])
