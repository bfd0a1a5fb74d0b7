"""Package indexes: fetch each Packages file named in a verified Release, check it, parse it fast, cache it.

Parsing is lazy: one pass records where each package's stanza starts and who provides what; full
records are read only for the few hundred packages a resolve touches. The parsed form is cached by the
sha256 of the index file, so a second run reads one pickle.
"""

import gc
import gzip
import lzma
import mmap
import os
import pickle
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from debian.debian_support import Version

from bootstrap import http
from bootstrap.cache import Cache
from bootstrap.deb.release import IndexFile, Release
from bootstrap.errors import BootstrapError, MirrorError

PARSER_VERSION = 2
_COMPRESSIONS: tuple[tuple[str, Callable[[bytes], bytes]], ...] = (
    (".gz", gzip.decompress),
    (".xz", lzma.decompress),
    ("", bytes),
)


@dataclass(frozen=True, slots=True)
class Package:
    """One binary package as its index describes it."""

    name: str
    version: str
    arch: str
    multi_arch: str
    priority: str
    essential: bool
    depends: str
    pre_depends: str
    provides: str
    conflicts: str
    breaks: str
    filename: str
    size: int
    sha256: str
    source: str
    mirror: str
    dist: str
    section: str = ""

    @property
    def url(self) -> str:
        return f"{self.mirror}/{self.filename}"

    @property
    def key(self) -> str:
        """dpkg's database name: `name:arch` for Multi-Arch: same packages, else `name`."""
        return f"{self.name}:{self.arch}" if self.multi_arch == "same" else self.name

    @property
    def source_name(self) -> str:
        return self.source.split(" ", 1)[0] if self.source else self.name


def parse_stanza(stanza: str) -> dict[str, str]:
    """Fields of one deb822 stanza; continuation lines are joined with newlines, as dpkg keeps them."""
    fields: dict[str, str] = {}
    key = ""
    for line in stanza.split("\n"):
        if not line:
            continue
        if line[0] in " \t":
            if key:
                fields[key] += "\n" + line
            continue
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return fields


@dataclass
class PackagesFile:
    """One parsed Packages index: its raw bytes (in memory, or mapped from the cache) and where each
    package's stanza starts. Only the stanzas a resolve asks for are ever decoded."""

    text: "bytes | mmap.mmap"
    starts: dict[str, list[int]]
    provides: dict[str, list[str]]
    priorities: dict[str, list[str]]
    essential: list[str]

    @classmethod
    def parse(cls, raw: bytes | str) -> "PackagesFile":
        text = raw.encode() if isinstance(raw, str) else raw
        starts: dict[str, list[int]] = {}
        provides: dict[str, list[str]] = {}
        priorities: dict[str, list[str]] = {}
        essential: list[str] = []
        find = text.find
        pos, n = 0, len(text)
        while pos < n:
            while pos < n and text[pos] == 10:
                pos += 1
            if pos >= n:
                break
            end = find(b"\n\n", pos)
            if end < 0:
                end = n
            if text.startswith(b"Package:", pos):
                nl = find(b"\n", pos, end)
                name = text[pos + 8 : nl if nl >= 0 else end].strip().decode()
                starts.setdefault(name, []).append(pos)
                i = find(b"\nProvides:", pos, end)
                if i >= 0:
                    j = find(b"\n", i + 1, end)
                    for item in text[i + 10 : j if j >= 0 else end].split(b","):
                        virtual = item.split(b"(", 1)[0].strip()
                        if virtual:
                            provides.setdefault(virtual.decode(), []).append(name)
                i = find(b"\nPriority:", pos, end)
                if i >= 0:
                    j = find(b"\n", i + 1, end)
                    priorities.setdefault(text[i + 10 : j if j >= 0 else end].strip().decode(), []).append(name)
                if find(b"\nEssential: yes", pos, end) >= 0:
                    essential.append(name)
            pos = end + 2
        return cls(text, starts, provides, priorities, essential)

    def stanza(self, start: int) -> str:
        end = self.text.find(b"\n\n", start)
        return self.text[start : end if end >= 0 else len(self.text)].decode("utf-8", errors="replace")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PackagesFile):
            return NotImplemented
        return self.text[:] == other.text[:] and (self.starts, self.provides, self.priorities, self.essential) == (
            other.starts,
            other.provides,
            other.priorities,
            other.essential,
        )

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> dict[str, object]:
        """Pickled without the text, which is cached beside it and mapped back in."""
        return {k: v for k, v in self.__dict__.items() if k != "text"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self.text = b""


def _package(fields: dict[str, str], release: Release) -> Package:
    try:
        return Package(
            name=fields["Package"],
            version=fields["Version"],
            arch=fields["Architecture"],
            multi_arch=fields.get("Multi-Arch", "no"),
            priority=fields.get("Priority", "optional"),
            essential=fields.get("Essential", "no") == "yes",
            depends=fields.get("Depends", ""),
            pre_depends=fields.get("Pre-Depends", ""),
            provides=fields.get("Provides", ""),
            conflicts=fields.get("Conflicts", ""),
            breaks=fields.get("Breaks", ""),
            filename=fields["Filename"],
            size=int(fields["Size"]),
            sha256=fields["SHA256"],
            source=fields.get("Source", ""),
            mirror=release.mirror,
            dist=release.dist,
            section=fields.get("Section", ""),
        )
    except KeyError as exc:
        raise MirrorError(
            f"package {fields.get('Package', '?')} in {release.dist}: index has no {exc.args[0]} field",
            "the mirror's index is malformed",
        ) from None


class Index:
    """Every package of every Packages file of a build, with the newest version as each name's candidate."""

    def __init__(self, parts: Iterable[tuple[Release, PackagesFile]], arch: str) -> None:
        self.parts = list(parts)
        self.arch = arch
        self._records: dict[str, list[Package]] = {}

    def versions(self, name: str) -> list[Package]:
        """Every version of `name` for this architecture (or all), newest first."""
        found = self._records.get(name)
        if found is None:
            found = []
            for release, pf in self.parts:
                for start in pf.starts.get(name, ()):
                    pkg = _package(parse_stanza(pf.stanza(start)), release)
                    if pkg.arch in (self.arch, "all"):
                        found.append(pkg)
            found.sort(key=lambda p: Version(p.version), reverse=True)
            self._records[name] = found
        return found

    def candidate(self, name: str) -> Package | None:
        """The version apt would install by default: the newest one."""
        versions = self.versions(name)
        return versions[0] if versions else None

    def providers(self, virtual: str) -> list[str]:
        """Names of packages that declare `Provides: virtual`, sorted."""
        names: set[str] = set()
        for _, pf in self.parts:
            names.update(pf.provides.get(virtual, ()))
        return sorted(names)

    def with_priority(self, priority: str) -> set[str]:
        return {n for _, pf in self.parts for n in pf.priorities.get(priority, ())}

    def essential(self) -> set[str]:
        return {n for _, pf in self.parts for n in pf.essential}

    def __len__(self) -> int:
        return len({n for _, pf in self.parts for n in pf.starts})


def _choose(release: Release, component: str, arch: str) -> tuple[IndexFile, Callable[[bytes], bytes]]:
    base = f"{component}/binary-{arch}/Packages"
    for suffix, decompress in _COMPRESSIONS:
        entry = release.files.get(base + suffix)
        if entry is not None:
            return entry, decompress
    raise MirrorError(
        f"{release.dist} has no {base} index",
        f"check --arch {arch} and the components ({', '.join(release.components)} are available)",
    )


def _fetch_file(cache: Cache, release: Release, entry: IndexFile) -> Path:
    if cache.has(entry.sha256, entry.size):
        return cache.blob(entry.sha256)
    urls = [release.url(entry.path)]
    if release.by_hash:
        by_hash = entry.path.rsplit("/", 1)[0] + f"/by-hash/SHA256/{entry.sha256}"
        urls.insert(0, release.url(by_hash))
    with cache.locked(entry.sha256):
        if cache.has(entry.sha256, entry.size):
            return cache.blob(entry.sha256)
        for i, url in enumerate(urls):
            tmp = cache.temp("index")
            try:
                http.download(url, tmp, size=entry.size)
            except http.NotFound:
                if i + 1 < len(urls):
                    continue
                raise
            return cache.adopt(tmp, entry.sha256, url)
    raise AssertionError("unreachable")


def load(cache: Cache, release: Release, component: str, arch: str) -> PackagesFile:
    """The parsed Packages index of one component, fetched and checked against the Release if not cached.

    The cache keeps the decompressed index (mapped, not read, on later runs) and a small pickle of offsets.
    """
    entry, decompress = _choose(release, component, arch)
    base = cache.area("parsed") / f"{entry.sha256}.v{PARSER_VERSION}"
    text_path, offsets_path = base.with_suffix(base.suffix + ".text"), base.with_suffix(base.suffix + ".pickle")
    try:
        with open(offsets_path, "rb") as f, _no_gc():
            parsed: PackagesFile = pickle.load(f)
        with open(text_path, "rb") as f:
            parsed.text = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(f.fileno()).st_size else b""
        return parsed
    except (FileNotFoundError, EOFError, pickle.UnpicklingError, ValueError):
        pass
    blob = _fetch_file(cache, release, entry)
    try:
        text = decompress(blob.read_bytes())
    except (OSError, lzma.LZMAError, EOFError) as exc:
        blob.unlink(missing_ok=True)
        raise BootstrapError(
            f"{release.url(entry.path)}: cannot decompress: {exc}", "the cached copy was removed; run again"
        ) from exc
    parsed = PackagesFile.parse(text)
    tmp = cache.temp("parsed")
    tmp.write_bytes(text)
    tmp.replace(text_path)
    with open(tmp, "wb") as f:
        pickle.dump(parsed, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(offsets_path)
    for stale in cache.area("parsed").glob(f"{entry.sha256}.v*"):
        if not stale.name.startswith(base.name + "."):
            stale.unlink(missing_ok=True)
    return parsed


@contextmanager
def _no_gc() -> Iterator[None]:
    """Loading a few hundred thousand small objects is twice as fast without the cyclic collector running."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
