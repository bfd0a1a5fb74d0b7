"""Package indexes: fetch each Packages file named in a verified Release, check it, parse it fast, cache it.

Parsing is lazy: one pass records where each package's stanza starts and who provides what; full
records are read only for the few hundred packages a resolve touches. The parsed form is cached by the
sha256 of the index file: the decompressed text (mapped, not read) and a small offsets file (plain data,
bound to that sha256 and to its own, see `cache.read_derived`) that also holds a sha256 of every block of
the text, so each stanza is proven the first time it is read without hashing the whole index on every run.
"""

import array
import gc
import hashlib
import mmap
import os
import re
import struct
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from debian.debian_support import Version

from bootstrap.deb.release import IndexFile, Release
from bootstrap.errors import ChecksumError, MirrorError
from bootstrap.family import model
from bootstrap.host import compressed, http
from bootstrap.host.cache import Cache, open_derived, read_derived, write_derived, write_entry
from bootstrap.log import log
from bootstrap.numbers import is_decimal

PARSER_VERSION = 3
BLOCK = 4096
"""The text of a cached index is proven in blocks of this size, each when a stanza in it is first read."""
V = TypeVar("V")
COMPRESSIONS = (".gz", ".xz", "")
"""The Packages files read, in order of preference (`bootstrap.host.compressed` reads each)."""
MAX_INDEX = 1 << 30
"""The most bytes a Packages file may expand to when the Release lists no uncompressed size for it (Debian's
and Ubuntu's largest are about a tenth of this)."""


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
    maintainer: str = ""
    """`Name <address>` of who maintains the package in the distribution: its supplier in an SBOM."""

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

    @property
    def source_version(self) -> str:
        """The source package's version: given in `Source: name (version)` when it differs from the binary's."""
        _, _, rest = self.source.partition(" ")
        return rest.strip().strip("()") or self.version

    def neutral(self) -> model.Package:
        """The package as the generic layers (lock, SBOMs, changes) see it."""
        return model.Package(
            self.name,
            self.version,
            self.arch,
            self.filename,
            self.url,
            self.size,
            self.sha256,
            self.dist,
            self.source_name,
            self.source_version,
            self.maintainer,
        )


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


class MultiMap(Mapping[str, list[V]]):
    """A read-only `{key: [values]}` over two parallel lists in which each key's values sit together: how a
    cached index loads in a few C-speed passes instead of building a dict of lists."""

    def __init__(self, keys: Sequence[str], values: Sequence[V]) -> None:
        if len(keys) != len(values):
            raise ValueError("keys and values differ in number")
        self._keys, self._values = keys, values
        self._last = dict(zip(keys, range(len(keys)), strict=True))

    def __getitem__(self, key: str) -> list[V]:
        last = first = self._last[key]
        while first and self._keys[first - 1] == key:
            first -= 1
        return list(self._values[first : last + 1])

    def __contains__(self, key: object) -> bool:
        return key in self._last

    def __iter__(self) -> Iterator[str]:
        return iter(self._last)

    def __len__(self) -> int:
        return len(self._last)


def _flatten(table: Mapping[str, Sequence[V]]) -> tuple[list[str], list[V]]:
    keys: list[str] = []
    values: list[V] = []
    for key, group in table.items():
        keys += [key] * len(group)
        values += group
    return keys, values


def _lines(items: Sequence[str]) -> bytes:
    return "\n".join(items).encode()


def _split(data: bytes) -> tuple[str, ...]:
    """Names from a cached index, as a tuple: the collector stops tracking a tuple of strings after its first
    pass, where a list of 100,000 strings would be walked by every full collection of the build."""
    return tuple(data.decode().split("\n")) if data else ()


def _offsets(values: Sequence[int]) -> bytes:
    packed = array.array("Q", values)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed.tobytes()


def _unpack_offsets(data: bytes) -> "array.array[int]":
    packed = array.array("Q")
    packed.frombytes(data)
    if sys.byteorder == "big":
        packed.byteswap()
    return packed


@dataclass(eq=False)
class PackagesFile:
    """One parsed Packages index: its raw bytes (in memory, or mapped from the cache) and where each
    package's stanza starts. Only the stanzas a resolve asks for are ever decoded.

    Read from the cache, `blocks` holds the sha256 of every BLOCK of the text: a stanza's blocks are checked
    before it is decoded, and a mismatch replaces the text with `reload()` (made again from the verified
    index file)."""

    text: "bytes | mmap.mmap"
    starts: Mapping[str, Sequence[int]]
    provides: Mapping[str, Sequence[str]]
    priorities: Mapping[str, Sequence[str]]
    essential: list[str]
    blocks: bytes | None = None
    reload: Callable[[], bytes] | None = None
    _proven: set[int] = field(default_factory=set, init=False, repr=False)

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
                name = text[pos + 8 : nl if nl >= 0 else end].strip().decode(errors="replace")
                starts.setdefault(name, []).append(pos)
                i = find(b"\nProvides:", pos, end)
                if i >= 0:
                    j = find(b"\n", i + 1, end)
                    for item in text[i + 10 : j if j >= 0 else end].split(b","):
                        virtual = item.split(b"(", 1)[0].strip()
                        if virtual:
                            provides.setdefault(virtual.decode(errors="replace"), []).append(name)
                i = find(b"\nPriority:", pos, end)
                if i >= 0:
                    j = find(b"\n", i + 1, end)
                    priority = text[i + 10 : j if j >= 0 else end].strip().decode(errors="replace")
                    priorities.setdefault(priority, []).append(name)
                if find(b"\nEssential: yes", pos, end) >= 0:
                    essential.append(name)
            pos = end + 2
        return cls(text, starts, provides, priorities, essential)

    def sections(self) -> list[bytes]:
        """The parsed form as plain data (for the cache): offsets, names and the sha256 of every text block."""
        starts, offsets = _flatten(self.starts)
        virtuals, providers = _flatten(self.provides)
        priorities, names = _flatten(self.priorities)
        text = self.text
        digests = b"".join(hashlib.sha256(text[i : i + BLOCK]).digest() for i in range(0, len(text), BLOCK))
        return [
            *(_lines(starts), _offsets(offsets), _lines(virtuals), _lines(providers), _lines(priorities)),
            *(_lines(names), _lines(self.essential), struct.pack(">Q", len(text)), digests),
        ]

    @classmethod
    def from_sections(
        cls, sections: list[bytes], text: "bytes | mmap.mmap", reload: Callable[[], bytes]
    ) -> "PackagesFile":
        """The parsed form read back from `sections` over `text`; ValueError when they do not fit together."""
        if len(sections) != 9:
            raise ValueError("wrong number of sections")
        (length,) = struct.unpack(">Q", sections[7])
        if length != len(text) or len(sections[8]) != 32 * -(-length // BLOCK):
            raise ValueError("the text is not the one the offsets were made from")
        with _no_gc():
            starts = MultiMap(_split(sections[0]), _unpack_offsets(sections[1]))
            provides = MultiMap(_split(sections[2]), _split(sections[3]))
            priorities = MultiMap(_split(sections[4]), _split(sections[5]))
        return cls(text, starts, provides, priorities, list(_split(sections[6])), sections[8], reload)

    def stanza(self, start: int) -> str:
        text = self.text
        end = text.find(b"\n\n", start)
        stop = end if end >= 0 else len(text)
        if self.blocks is not None and not self._prove(start, min(stop + 2, len(text))):
            return self.stanza(start)
        return text[start:stop].decode("utf-8", errors="replace")

    def _prove(self, lo: int, hi: int) -> bool:
        """Check the text's blocks over [lo, hi) against their recorded sha256; on a mismatch, swap in text
        made again from the index file and return False."""
        assert self.blocks is not None
        for b in range(lo // BLOCK, (max(hi, lo + 1) - 1) // BLOCK + 1):
            if b in self._proven:
                continue
            if hashlib.sha256(self.text[b * BLOCK : (b + 1) * BLOCK]).digest() != self.blocks[32 * b : 32 * b + 32]:
                assert self.reload is not None
                self.text, self.blocks = self.reload(), None
                return False
            self._proven.add(b)
        return True

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


SHA256 = re.compile(r"[0-9a-f]{64}")
NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
"""A package name as dpkg takes one (Debian policy 5.6.1): it names files of the image's dpkg database."""
VERSION = re.compile(r"([0-9]+:)?[0-9][A-Za-z0-9.+~:-]*")
"""A version as dpkg takes one (policy 5.6.12): an epoch, then an upstream version starting with a digit."""
ARCH = re.compile(r"[a-z0-9][a-z0-9-]*")


def checked_fields(fields: Mapping[str, str], where: str) -> None:
    """The fields that name files and decide order, as dpkg would take them: one line error else (`where`
    names the stanza's source and hints how to fix it)."""
    for field_name, pattern in (("Package", NAME), ("Version", VERSION), ("Architecture", ARCH)):
        value = fields.get(field_name)
        if value is not None and not pattern.fullmatch(value):
            raise MirrorError(
                f"{where}: {field_name} {value[:80]!r} is not one dpkg takes", "the index is malformed or hostile"
            )
    version = fields.get("Version")
    if version is not None:
        try:
            Version(version)
        except ValueError:
            raise MirrorError(f"{where}: Version {version!r} is not one dpkg takes", "the index is malformed") from None


def _package(fields: dict[str, str], release: Release) -> Package:
    where = f"package {fields.get('Package', '?')[:80]!r} in {release.dist}"
    checked_fields(fields, where)
    if not is_decimal(fields.get("Size", "0")) or not SHA256.fullmatch(fields.get("SHA256", "0" * 64)):
        raise MirrorError(f"{where}: its Size or SHA256 is malformed", "the mirror's index is malformed or hostile")
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
            maintainer=fields.get("Maintainer", ""),
        )
    except KeyError as exc:
        raise MirrorError(
            f"{where}: index has no {exc.args[0]} field",
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
                    if pkg.name != name:
                        raise MirrorError(
                            f"a stanza of {release.dist} listed as {name!r} names {pkg.name!r}",
                            "the mirror's index is malformed or hostile",
                        )
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


def _choose(release: Release, component: str, arch: str) -> tuple[IndexFile, IndexFile | None]:
    """The Packages file to fetch, and the Release's entry for its uncompressed text (its size and sha256)."""
    base = f"{component}/binary-{arch}/Packages"
    for suffix in COMPRESSIONS:
        entry = release.files.get(base + suffix)
        if entry is not None:
            return entry, release.files.get(base)
    raise MirrorError(
        f"{release.dist} has no {base} index",
        f"check --arch {arch} and the components ({', '.join(release.components)} are available)",
    )


def _fetch_file(cache: Cache, release: Release, entry: IndexFile) -> Path:
    urls = [release.url(entry.path)]
    if release.by_hash:
        by_hash = entry.path.rsplit("/", 1)[0] + f"/by-hash/SHA256/{entry.sha256}"
        urls.insert(0, release.url(by_hash))

    def download(tmp: Path) -> str:
        for url in urls[:-1]:
            try:
                http.download(url, tmp, size=entry.size, sha256=entry.sha256)
                return url
            except http.NotFound:
                continue
        http.download(urls[-1], tmp, size=entry.size, sha256=entry.sha256)
        return urls[-1]

    return cache.obtain(entry.sha256, entry.size, download)


def inflated(raw: bytes, entry: IndexFile, plain: IndexFile | None, what: str) -> bytes:
    """The text of the Packages file `raw` (the Release's `entry`), as `_decompressed` bounds it."""
    limit, sha256 = (plain.size, plain.sha256) if plain is not None and plain is not entry else (None, None)
    return compressed.inflate(raw, entry.path, limit, sha256, what, MAX_INDEX)


def _decompressed(
    cache: Cache, release: Release, entry: IndexFile, plain: IndexFile | None, text_path: Path | None
) -> bytes:
    """The index text, from the cached index file (hashed as read; fetched when missing or damaged), written to
    `text_path` (when given) for the next run: never past the size (nor other than the sha256) the Release gives
    the uncompressed text (`plain`), nor past MAX_INDEX."""
    raw = cache.read(entry.sha256)
    if raw is None:
        _fetch_file(cache, release, entry)
        raw = cache.read(entry.sha256)
    if raw is None:
        raise ChecksumError(
            f"{release.url(entry.path)} changed in the cache while it was read", "another process is writing there"
        )
    try:
        text = inflated(raw, entry, plain, release.url(entry.path))
    except ChecksumError:
        cache.blob(entry.sha256).unlink(missing_ok=True)
        raise
    if text_path is not None:
        write_entry(text_path, text)
    return text


def _cached(offsets_path: Path, text_path: Path, sha256: str, reload: Callable[[], bytes]) -> PackagesFile | None:
    """The parsed index from the cache, when its offsets prove themselves and its text is the right size."""
    sections = read_derived(offsets_path, sha256)
    if sections is None:
        return None
    fd = open_derived(text_path)
    if fd is None:
        return None
    with open(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        text = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    try:
        return PackagesFile.from_sections(sections, text, reload)
    except (ValueError, UnicodeDecodeError, struct.error) as exc:
        log.debug("cache: %s does not fit %s (%s): made again", offsets_path, text_path, exc)
        return None


def load(cache: Cache, release: Release, component: str, arch: str, derived: bool = True) -> PackagesFile:
    """The parsed Packages index of one component, fetched and checked against the Release if not cached.

    The cache keeps the decompressed index (mapped, not read, on later runs) and a small offsets file; without
    `derived`, neither is read or written: the index file (hashed against the Release) is parsed again.
    """
    entry, plain = _choose(release, component, arch)
    if not derived:
        return PackagesFile.parse(_decompressed(cache, release, entry, plain, None))
    area = cache.area("parsed")
    base = f"{entry.sha256}.v{PARSER_VERSION}"
    text_path, offsets_path = area / f"{base}.text", area / f"{base}.offsets"

    def reload() -> bytes:
        log.debug("cache: %s does not match its recorded block hashes: made again", text_path)
        return _decompressed(cache, release, entry, plain, text_path)

    parsed = _cached(offsets_path, text_path, entry.sha256, reload)
    if parsed is not None:
        return parsed
    parsed = PackagesFile.parse(_decompressed(cache, release, entry, plain, text_path))
    write_derived(offsets_path, entry.sha256, parsed.sections())
    for stale in area.glob(f"{entry.sha256}.*"):
        if not stale.name.startswith(base + "."):
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
