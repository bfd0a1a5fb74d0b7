"""Resource faults, made for real with small tmpfs mounts (root): the output directory's disk fills up, the
cache's disk fills up, the output directory is read-only, the scratch directory's disk fills up.

Each build must fail with one line naming the place and the cause, leave the previous output as it was, and
leave the cache without an entry that fails its own check; a later build with room succeeds."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.faults.conftest import Case, Reference, Site

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

MiB = 1 << 20


@contextmanager
def tmpfs(site: Site, path: Path, size: int) -> Iterator[Path]:
    """A tmpfs of `size` bytes at `path` (the site's checks know it is the test's own mount)."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], check=True)
    site.mounts.append(str(path))
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
        site.mounts.remove(str(path))


def _remount_ro(path: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


def _size(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())


def test_output_disk_full(case: Case, site: Site, reference: Reference) -> None:
    case.describe(
        "resource",
        "the output directory on a tmpfs with room for the previous build and 8 MiB more (ENOSPC)",
        "fails: one line naming the output directory and 'No space left'; previous output intact; cache sound",
    )
    with tmpfs(site, site.root / "small", _size(reference.out) + 8 * MiB) as small:
        site.out = small / "out"
        site.previous(reference.out)
        site.seed(reference.cache, ("parsed", "expanded", "releases", "sha256"))
        run = site.build()
        error = site.assert_clean_failure(run, str(site.out), "No space left on device")
        assert list(small.iterdir()) == [site.out], "something was left beside the output"
    case.saw(error)


def test_cache_disk_full(case: Case, site: Site, reference: Reference) -> None:
    case.describe(
        "resource",
        "the cache on an 8 MiB tmpfs (the packages take about 30 MiB)",
        "fails: one line naming the cache and 'No space left'; previous output intact; no partial entry kept",
    )
    site.previous(reference.out)
    with tmpfs(site, site.cache, 8 * MiB):
        run = site.build()
        error = site.assert_clean_failure(run, str(site.cache), "No space left on device")
        blobs = len(list((site.cache / "sha256").iterdir()))
    case.saw(f"{error} ({blobs} whole packages kept)")


def test_read_only_output(case: Case, site: Site, reference: Reference) -> None:
    case.describe(
        "resource",
        "the output directory on a read-only file system (holding the previous build)",
        "fails before any work: one line naming the directory and 'Read-only'; previous output intact",
    )
    with tmpfs(site, site.root / "ro", _size(reference.out) + 8 * MiB) as ro:
        site.out = ro / "out"
        site.previous(reference.out)
        _remount_ro(ro)
        run = site.build()
        error = site.assert_clean_failure(run, str(ro), "Read-only file system")
    assert not (site.cache / "sha256").exists() or not any((site.cache / "sha256").iterdir()), "work was done"
    case.saw(error)


def test_scratch_disk_full(case: Case, site: Site, reference: Reference) -> None:
    case.describe(
        "resource",
        "the build's scratch directory (TMPDIR, --no-tmpfs) on a 16 MiB tmpfs (the tree needs about 80 MiB)",
        "fails: one line naming the cause; previous output intact; nothing left in the scratch directory",
    )
    site.previous(reference.out)
    site.seed(reference.cache, ("parsed", "expanded", "releases", "sha256"))
    with tmpfs(site, site.scratch, 16 * MiB):
        run = site.build("--no-tmpfs")
        error = site.assert_clean_failure(run, "No space left on device")
    case.saw(error)


@pytest.fixture(autouse=True)
def _root_only(as_root: None) -> None:
    """Mounting needs root; as_root skips (or fails in CI) otherwise."""
