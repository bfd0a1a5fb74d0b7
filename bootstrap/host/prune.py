"""The cache's size: what each area holds, and pruning down to a size, least recently used first.

Every entry a build takes is marked used (its mtime, `cache.touch`), so the order is the order of use. One
mechanism serves every area (downloads, expanded packages, parsed indexes, kept gzip members): `bootstrap cache
prune` and the cap applied after every build (`--cache-max`, `$BOOTSTRAP_CACHE_MAX`, default DEFAULT_MAX).

Safe while other builds use the cache: each build holds a session (`Cache.session`) from its start to its end,
and marks what it takes under a shared lock (`Cache.taking`) that pruning holds exclusive. Pruning keeps every
entry used since the oldest running session began; what it removes is gone before any build takes it, and a
build that finds an entry gone fetches or makes it again. The signed Release copies (`releases/`, the floor a
later copy's Date must reach) and the locks are never removed.
"""

import os
import re
import stat
import time
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from bootstrap.errors import BootstrapError
from bootstrap.host import kepttree, scratch
from bootstrap.host.cache import SESSION_PREFIX, TAKE_LOCK, Cache
from bootstrap.host.kepttree import RECORD, size_of
from bootstrap.log import log

PRUNED = ("sha256", "expanded", "parsed", "gzip", "layers", "verdicts", "rpmdb", "trees")
"""The areas pruning removes from: downloaded packages and index files, expanded packages, parsed indexes, kept
gzip members and layers, package signature verdicts, RPM package databases, unpacked trees. Everything there is
made again (or fetched) when missing."""
WHOLE = ("trees",)
"""Areas whose entries are directories, each taken whole (`bootstrap.build.kepttree`)."""
KEPT = ("releases", "repomd", "locks", "tmp")
"""Shown by `usage`, never pruned."""
DESCRIPTIONS = {
    "sha256": "downloaded packages and index files",
    "expanded": "decompressed packages",
    "parsed": "parsed package indexes (RPM listings and resolved sets too)",
    "gzip": "gzip members of earlier layers",
    "layers": "the blocks and digests of each package set's layer",
    "verdicts": "package signature verdicts",
    "rpmdb": "the rpm database each RPM package set gave",
    "trees": "the tree each settled package set's unpack left",
    "releases": "verified InRelease files (never pruned)",
    "repomd": "verified repomd.xml files (never pruned)",
    "locks": "lock files",
    "tmp": "downloads under way",
}
DEFAULT_MAX = 5 << 30
MAX_ENV = "BOOTSTRAP_CACHE_MAX"
SLACK_NS = 50_000_000
"""Entries used up to this long before the oldest running session began are kept too: both times are the file
system's (the session marker's mtime and the entry's), this only covers the clock's granularity."""

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
OFF = ("off", "none", "unlimited")


def parse_size(text: str, what: str = "--cache-max") -> int | None:
    """Bytes from `2G`, `500M`, `1.5GiB`, `4096` (binary units); None for `off` (no cap)."""
    if text.strip().lower() in OFF:
        return None
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise BootstrapError(
            f"{what} {text!r} is not a size", "give bytes or a size such as 500M, 2G or 1.5T (or 'off' for no cap)"
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def cap(given: str | None = None) -> int | None:
    """The size cap: `given` (--cache-max), else $BOOTSTRAP_CACHE_MAX, else DEFAULT_MAX; None when 'off'."""
    if given:
        return parse_size(given)
    env = os.environ.get(MAX_ENV)
    return parse_size(env, f"${MAX_ENV}") if env else DEFAULT_MAX


def show(n: int) -> str:
    """`1.5 GiB`, `320.0 KiB`, `12 B`."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


# --- what is there ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    path: Path
    size: int
    used_ns: int


def _files(directory: Path) -> Iterator[Entry]:
    """The regular files below `directory` (not the hidden temporaries of writes under way), never through a link:
    an area that is one holds nothing of the cache's (`bootstrap.host.cache.real_dir` replaces it)."""
    try:
        if not stat.S_ISDIR(os.lstat(directory).st_mode):
            return
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                yield from _files(Path(entry.path))
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                yield Entry(Path(entry.path), st.st_size, st.st_mtime_ns)
        except OSError:  # gone meanwhile
            continue


def _whole(directory: Path) -> Iterator[Entry]:
    """The entries of an area of directories (`WHOLE`): each one's size as its record says, used when its record
    was."""
    try:
        entries = [e for e in os.scandir(directory) if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for entry in entries:
        path = Path(entry.path)
        yield Entry(path, size_of(path), _used(path / RECORD))


def _used(record: Path) -> int:
    """When an entry of a `WHOLE` area was last taken: its record's mtime (0 without one: nothing takes it)."""
    try:
        return os.lstat(record).st_mtime_ns
    except OSError:
        return 0


def _entries(cache: Cache, area: str) -> Iterator[Entry]:
    return _whole(cache.root / area) if area in WHOLE else _files(cache.root / area)


@dataclass(frozen=True)
class Area:
    name: str
    files: int
    size: int
    pruned: bool

    def as_dict(self) -> dict[str, object]:
        return {"area": self.name, "files": self.files, "bytes": self.size, "pruned": self.pruned}


def usage(cache: Cache) -> list[Area]:
    """Files and bytes of every area of the cache (the pruned ones first)."""
    areas = []
    for name in (*PRUNED, *KEPT):
        found = list(_entries(cache, name))
        areas.append(Area(name, len(found), sum(e.size for e in found), name in PRUNED))
    return areas


# --- pruning ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pruned:
    removed: int
    freed: int
    busy: int
    """Bytes that would have gone but running builds are using (kept)."""
    left: int
    """Bytes left in the pruned areas."""


def oldest_session(cache: Cache) -> int | None:
    """When the oldest build that is using the cache began (ns), or None when none is. A session's marker lock
    is held for as long as its build runs; one nobody holds was left by a killed build."""
    began = []
    for marker in (cache.root / "tmp").glob(f"{SESSION_PREFIX}*"):
        if marker.suffix != ".lock" and not scratch.abandoned(marker):
            with suppress(OSError):
                began.append(marker.with_name(marker.name + ".lock").stat().st_mtime_ns)
    return min(began, default=None)


def prune(cache: Cache, max_bytes: int, areas: Iterable[str] = PRUNED) -> Pruned:
    """Remove the least recently used entries of `areas` until they hold at most `max_bytes`, never one that a
    running build took (see the module's docstring)."""
    for area in WHOLE:
        if area in areas and (cache.root / area).is_dir():
            kepttree.sweep(cache.root / area)  # what a killed removal left, never counted
    found = sorted((e for area in areas for e in _entries(cache, area)), key=lambda e: e.used_ns)
    total = sum(e.size for e in found)
    removed = freed = busy = 0
    if total <= max_bytes:
        return Pruned(0, 0, 0, total)
    with cache.locked(TAKE_LOCK):
        began = oldest_session(cache)
        keep_since = None if began is None else began - SLACK_NS
        for entry in found:
            if total <= max_bytes:
                break
            whole = entry.path.parent.name in WHOLE
            try:
                st = os.lstat(entry.path)
            except FileNotFoundError:
                total -= entry.size
                continue
            size, used = (entry.size, _used(entry.path / RECORD)) if whole else (st.st_size, st.st_mtime_ns)
            if keep_since is not None and used >= keep_since:
                busy += size
                continue
            if whole:
                scratch.retire(entry.path, ".gone-")
            else:
                entry.path.unlink(missing_ok=True)
            if entry.path.parent == cache.root / "sha256":
                (cache.root / "locks" / entry.path.name).unlink(missing_ok=True)
            total -= size
            removed += 1
            freed += size
    return Pruned(removed, freed, busy, total)


def after_build(cache: Cache, max_bytes: int | None) -> None:
    """The cap applied after a build (nothing when it is off): prune down to `max_bytes`."""
    if max_bytes is None:
        return
    started = time.monotonic()
    done = prune(cache, max_bytes)
    if done.removed:
        log.info(
            "cache: removed %d least recently used entries (%s) to stay under %s, in %.1f s",
            done.removed,
            show(done.freed),
            show(max_bytes),
            time.monotonic() - started,
        )
