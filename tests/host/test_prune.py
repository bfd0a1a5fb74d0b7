"""The cache's size cap: sizes as written, and pruning that keeps what a running build took."""

import hashlib
import os
from pathlib import Path

import pytest

from bootstrap.errors import BootstrapError
from bootstrap.host import kepttree, prune
from bootstrap.host.cache import Cache


def test_sizes() -> None:
    assert prune.parse_size("2G") == 2 << 30
    assert prune.parse_size("500M") == 500 << 20
    assert prune.parse_size("1.5GiB") == 3 << 29
    assert prune.parse_size("4096") == 4096
    assert prune.parse_size("0") == 0
    assert prune.parse_size("off") is None
    with pytest.raises(BootstrapError, match="is not a size"):
        prune.parse_size("lots")


def test_cap_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(prune.MAX_ENV, raising=False)
    assert prune.cap() == prune.DEFAULT_MAX
    monkeypatch.setenv(prune.MAX_ENV, "1G")
    assert prune.cap() == 1 << 30 and prune.cap("2G") == 2 << 30
    monkeypatch.setenv(prune.MAX_ENV, "off")
    assert prune.cap() is None


def _blob(cache: Cache, content: bytes, used: int) -> str:
    digest = hashlib.sha256(content).hexdigest()
    path = cache.blob(digest)
    path.write_bytes(content)
    os.utime(path, (used, used))
    return digest


def test_least_recently_used_first(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "cache").ensure()
    digests = [_blob(cache, bytes([n]) * 100, 1_000_000 + n) for n in range(4)]
    done = prune.prune(cache, 250)
    assert (done.removed, done.freed, done.left) == (2, 200, 200)
    assert [cache.blob(d).exists() for d in digests] == [False, False, True, True]


def test_a_session_keeps_what_it_took(tmp_path: Path) -> None:
    """An entry taken (`has`) while a build's session runs stays, however long unused before; the others go."""
    cache = Cache(tmp_path / "cache").ensure()
    old = _blob(cache, b"old", 1_000_000)
    taken = _blob(cache, b"taken", 1_000_001)
    with cache.session():
        assert cache.has(taken)
        done = prune.prune(cache, 0)
        assert not cache.blob(old).exists()
        assert cache.blob(taken).exists(), "taken by the running session"
        assert done.busy == len(b"taken")
    assert prune.prune(cache, 0).left == 0, "once the session ended, it can go"


def test_a_kept_tree_is_one_entry_and_goes_whole(tmp_path: Path) -> None:
    """A tree the cache keeps (`bootstrap.host.kepttree`) counts as one entry, as large as its record says, as
    recently used as its record; pruning removes it whole."""
    cache = Cache(tmp_path / "cache").ensure()
    area = cache.area(kepttree.AREA)
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc" / "a").write_bytes(b"x" * 50_000)
    os.symlink("a", tree / "etc" / "b")
    name = hashlib.sha256(b"a package set").hexdigest()
    kepttree.keep(area, name, tree, (b"state",))
    found = kepttree.find(area, name)
    assert found is not None and found.state == (b"state",)
    assert (found.tree / "etc" / "a").read_bytes() == b"x" * 50_000 and os.readlink(found.tree / "etc" / "b") == "a"
    (trees,) = [a for a in prune.usage(cache) if a.name == kepttree.AREA]
    assert trees.files == 1 and trees.size >= 50_000
    os.utime(area / name / kepttree.RECORD, (1_000_000, 1_000_000))
    with cache.session():
        assert kepttree.find(area, name) is not None, "taken by the running session: marked used"
        assert prune.prune(cache, 0).busy == trees.size and (area / name).exists()
    done = prune.prune(cache, 0)
    assert done.removed == 1 and done.freed == trees.size and not (area / name).exists()
    assert [p.name for p in area.iterdir()] == [], "nothing left beside it"


def test_a_kept_tree_whose_record_does_not_prove_is_not_taken_and_is_kept_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record someone without the user's key wrote is not taken; keeping the tree again replaces the entry."""
    cache = Cache(tmp_path / "cache").ensure()
    area = cache.area(kepttree.AREA)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "file").write_bytes(b"ours")
    name = hashlib.sha256(b"another set").hexdigest()
    with monkeypatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(tmp_path / "someone-else"))
        kepttree.keep(area, name, tree, (b"theirs",))
    assert (area / name / kepttree.RECORD).exists()
    assert kepttree.find(area, name) is None
    kepttree.keep(area, name, tree, (b"ours",))
    found = kepttree.find(area, name)
    assert found is not None and found.state == (b"ours",)


def test_what_a_killed_removal_of_a_kept_tree_left_is_swept(tmp_path: Path) -> None:
    """A build or prune killed while it removed a tree leaves it under a hidden name with a lock nobody holds:
    never an entry, so pruning sweeps it first."""
    cache = Cache(tmp_path / "cache").ensure()
    area = cache.area(kepttree.AREA)
    left = area / ".gone-abcdefgh"
    (left / "tree" / "etc").mkdir(parents=True)
    (left / "tree" / "etc" / "big").write_bytes(b"x" * 10_000)
    (area / ".gone-abcdefgh.lock").touch()
    prune.prune(cache, 1 << 30)
    assert list(area.iterdir()) == []


def test_a_kept_tree_swapped_for_a_link_after_it_was_found_is_not_opened(tmp_path: Path) -> None:
    """The overlay is given the kept tree's directory as found from the area without following a link: one
    swapped in for it since (a link to a host directory) is refused, as is a directory others can write."""
    cache = Cache(tmp_path / "cache").ensure()
    area = cache.area(kepttree.AREA)
    tree = tmp_path / "tree"
    tree.mkdir()
    name = hashlib.sha256(b"swapped").hexdigest()
    kepttree.keep(area, name, tree, (b"state",))
    found = kepttree.find(area, name)
    assert found is not None
    with found.opened() as fd:
        assert os.path.samestat(os.fstat(fd), os.stat(found.tree))
    found.tree.rename(area / name / "aside")
    os.symlink("/etc", found.tree)
    with pytest.raises(kepttree.Unusable, match="is gone"), found.opened():
        pass
    found.tree.unlink()
    (area / name / "aside").rename(found.tree)
    found.tree.chmod(0o777)
    with pytest.raises(kepttree.Unusable, match="not the builder's own"), found.opened():
        pass
