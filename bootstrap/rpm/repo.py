"""Opening an RPM repository: repomd.xml checked against its detached signature and the pinned keys, never
older than the state verified before, and each metadata file used checked against repomd.xml, then read."""

import dataclasses
import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bootstrap.errors import BootstrapError, ChecksumError, MirrorError, NetworkError, SignatureError
from bootstrap.family.model import Source
from bootstrap.host import compressed, http, openpgp
from bootstrap.host.cache import Cache, read_entry, read_state, write_entry, write_state
from bootstrap.log import log
from bootstrap.rpm import comps, listing, metalink
from bootstrap.rpm.comps import Group
from bootstrap.rpm.listing import Listing
from bootstrap.rpm.packages import Package
from bootstrap.rpm.repomd import DataFile, RepoMd
from bootstrap.rpm.repomd import parse as parse_repomd

MAX_SIGNATURE = 64 << 10
STATE = "state"
"""A slot's state (`bootstrap.host.cache.write_state`): the kept copy's rank, source and sha256."""
"""The most bytes read of repomd.xml.asc (a few signatures are a few kB)."""


@dataclass(frozen=True)
class Repository:
    """One verified repository state and the packages and groups its metadata lists."""

    url: str
    repomd: RepoMd
    repomd_sha256: str
    read_listing: Callable[[], Listing] = field(repr=False, compare=False)
    """Reads (and checks) the packages its metadata lists, then keeps the state as the floor against rollback:
    `listing`."""
    settle: Callable[[], None] = field(repr=False, compare=False)
    """Keeps the state as the floor against rollback, for a build that reads no listing because its metadata files
    were checked before (`bootstrap.rpm.resolved`)."""
    groups: dict[str, Group]
    insecure: bool = False
    _read: dict[str, Listing] = field(default_factory=dict, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def listing(self) -> Listing:
        """The packages its metadata lists, read when first asked for (`open_repository`); each repository's own
        lock, so that several are read at once."""
        with self._lock:
            if "listing" not in self._read:
                self._read["listing"] = self.read_listing()
            return self._read["listing"]

    @property
    def listing_read(self) -> bool:
        """Whether `listing` was read."""
        return "listing" in self._read

    @property
    def packages(self) -> tuple[Package, ...]:
        return self.listing.packages

    @property
    def source(self) -> Source:
        """As the lock records it: the signed file's digest and where it is."""
        return Source(self.url, "", self.repomd.revision, self.repomd.stamp, self.repomd_sha256, _repomd_url(self.url))


def _repomd_url(url: str) -> str:
    return f"{url}/repodata/repomd.xml"


@dataclass(frozen=True)
class _Slot:
    """The cache of one repository's repomd.xml: the last copy that passed every check, with its signature and
    rank; a later copy must rank at least as high (no rollback)."""

    cache: Cache
    url: str

    @property
    def dir(self) -> Path:
        return self.cache.slot("repomd", hashlib.sha256(self.url.encode()).hexdigest()[:32])

    def meta(self) -> dict[str, Any]:
        """The kept copy's state (its rank, where it was read from, its sha256)."""
        state = read_state(self.dir / STATE)
        return state if isinstance(state.get("stamp"), int) else {}

    def known(self) -> int | None:
        stamp = self.meta().get("stamp")
        return stamp if isinstance(stamp, int) else None

    def cached(self) -> tuple[bytes, bytes] | None:
        data = read_entry(self.dir / "repomd.xml", http.MAX_UNSIZED)
        signature = read_entry(self.dir / "repomd.xml.asc", MAX_SIGNATURE)
        if data is None or signature is None or hashlib.sha256(data).hexdigest() != self.meta().get("sha256"):
            return None  # missing, or not the copy the state ranks
        return data, signature

    def base(self) -> str | None:
        """Where the kept copy was read from (a slot keyed by a metalink: the mirror chosen then)."""
        base = self.meta().get("base")
        return base if isinstance(base, str) and base else None

    def keep(self, data: bytes, signature: bytes, stamp: int, base: str = "") -> None:
        with self.cache.locked(f"repomd-{self.dir.name}"):
            known = self.known()
            if known is not None and known > stamp:
                return
            self.dir.mkdir(exist_ok=True)
            write_entry(self.dir / "repomd.xml", data)
            write_entry(self.dir / "repomd.xml.asc", signature)
            write_state(self.dir / STATE, {"stamp": stamp, "base": base, "sha256": hashlib.sha256(data).hexdigest()})


def _fetch_signed(url: str, slot: _Slot, offline: bool, insecure: bool) -> tuple[bytes, bytes]:
    if offline:
        got = slot.cached()
        if got is None:
            raise BootstrapError(f"--offline: {url} is not in the cache", "run once without --offline")
        return got
    data = http.fetch_bytes(url)
    if insecure:
        return data, b""
    try:
        signature = http.fetch_bytes(f"{url}.asc", MAX_SIGNATURE)
    except http.NotFound:
        raise SignatureError(
            f"{url}: not signed (no {url}.asc)",
            "the repository must sign its repomd.xml; --insecure skips the check (never for images you ship)",
        ) from None
    return data, signature


def _check_rank(md: RepoMd, known: int | None, url: str) -> None:
    if known is not None and md.stamp < known:
        raise SignatureError(
            f"{url} is at revision {md.revision or md.stamp}, older than the state {known} already verified "
            "(a rollback)",
            "the mirror went back in time (stale or hostile): use another mirror",
        )


def _data(md: RepoMd, kind: str, url: str) -> DataFile:
    entry = md.data.get(kind)
    if entry is None:
        raise ChecksumError(f"{url} lists no {kind} metadata", "the repository is incomplete")
    if not entry.sha256:
        raise ChecksumError(f"{url}: the {kind} metadata has no sha256 checksum", "the repository is too old")
    return entry


def _local(base: str, entry: DataFile, cache: Cache, offline: bool) -> Path:
    """The metadata file, checked against repomd.xml's size and sha256 (from the cache when it is there)."""
    url = f"{base}/{entry.location}"
    if offline:
        if cache.has(entry.sha256, entry.size):
            return cache.blob(entry.sha256)
        raise BootstrapError(f"--offline: {url} is not in the cache", "run once without --offline")

    def download(tmp: Path) -> str:
        http.download(url, tmp, size=entry.size, sha256=entry.sha256)
        return url

    return cache.obtain(entry.sha256, entry.size, download)


def _document(base: str, entry: DataFile, cache: Cache, offline: bool) -> listing.Document:
    """The metadata file's content, as it is read (checked as it ends), and its URL."""
    path = _local(base, entry, cache, offline)
    what = f"{base}/{entry.location}"
    return compressed.chunks(path, entry.location, entry.open_size, entry.open_sha256, what), what


def _chunks(base: str, entry: DataFile, cache: Cache, offline: bool) -> Iterable[bytes]:
    return _document(base, entry, cache, offline)[0]


def _listing(base: str, md: RepoMd, where: str, cache: Cache, offline: bool, derived: bool) -> Listing:
    """The packages primary.xml and filelists.xml list; with `derived`, as an earlier build kept them for these
    files' sha256s (`listing.cached`), the files then neither fetched nor read."""
    primary = _data(md, "primary", where)
    lists = _data(md, "filelists", where) if "filelists" in md.data else None

    def read() -> Listing:
        files = _document(base, lists, cache, offline) if lists else None
        return listing.read(_document(base, primary, cache, offline), files)

    if not derived:
        return read()
    return listing.cached(cache.area("parsed"), [primary.sha256, lists.sha256 if lists else ""], read)


def open_repository(
    url: str,
    keyrings: tuple[Path, ...],
    cache: Cache,
    signers: frozenset[str] = frozenset(),
    insecure: bool = False,
    offline: bool = False,
    signed: bool = True,
    metalink_url: str = "",
    vouched: metalink.Metalink | None = None,
    derived: bool = True,
    lazy: bool = False,
) -> Repository:
    """Fetch and verify `<url>/repodata/repomd.xml` and read the packages (with their file lists) and groups of
    the state it names. With `signers`, only signatures by those keys (full fingerprints) count. `signed`
    false: the distribution does not sign its metadata (only its packages are signed; the rollback check and
    the metadata checksums still hold). `metalink_url`: the repository's metalink, whose states repomd.xml must
    be one of (checked when fetched, against `vouched` when the caller fetched it already; a build from the
    cache took what was checked then); the rollback check then holds across the mirrors it lists. `derived`: the
    listing an earlier build kept for the same metadata files serves (`verify` reads them again). `lazy`: the
    packages are read (and their metadata files checked) when first asked for, not here: a build that takes the
    package set it resolved before from the cache reads none (`bootstrap.rpm.resolved`)."""
    base = url.rstrip("/")
    where = _repomd_url(base)
    slot = _Slot(cache, metalink_url or where)
    data, signature = _fetch_signed(where, slot, offline, insecure or not signed)
    if metalink_url and not offline:
        doc = vouched or fetch_metalink(metalink_url)
        doc.vouch(data, where)
    if insecure:
        log.warning("WARNING: --insecure: the signature of %s is NOT checked", where)
    elif signed:
        openpgp.verify_detached(data, signature, keyrings, where, signers)
    else:
        log.info("%s is not signed by its distribution: each package's signature is checked", where)
    md = parse_repomd(data, where)
    _check_rank(md, slot.known(), where)
    group_kind = next((k for k in ("group", "group_gz", "group_xz", "group_zst") if k in md.data), None)
    groups = comps.read(_chunks(base, _data(md, group_kind, where), cache, offline), where) if group_kind else {}

    def settle() -> None:
        """The state kept as the floor against rollback, once its metadata files are checked."""
        if not insecure and not offline:
            slot.keep(data, signature, md.stamp, base)

    def read() -> Listing:
        listed = _listing(base, md, where, cache, offline, derived)
        settle()
        return listed

    repo = Repository(base, md, hashlib.sha256(data).hexdigest(), read, settle, groups, insecure)
    if not lazy:
        repo.listing  # noqa: B018 - read (and the state kept) now: a failure is the opening's
    return repo


def fetch_metalink(url: str) -> metalink.Metalink:
    """The metalink at `url`, read (at most http.MAX_UNSIZED bytes)."""
    return metalink.parse(http.fetch_bytes(url), url)


MIRROR_TRIES = 4
"""How many of a metalink's mirrors are tried before the last one's failure is the build's."""


@dataclass(frozen=True)
class Checks:
    """How `open_repository` judges a repository (its arguments after the URL), for `open_from_metalink`."""

    keyrings: tuple[Path, ...]
    cache: Cache
    signers: frozenset[str] = frozenset()
    insecure: bool = False
    offline: bool = False
    signed: bool = True
    derived: bool = True
    lazy: bool = False
    """The packages read when first asked for (`open_repository`); never where the metalink's mirrors are tried in
    turn (`open_from_metalink`): one whose metadata fails gives way to the next there."""

    def open(self, url: str, link: str = "", vouched: metalink.Metalink | None = None) -> Repository:
        return open_repository(
            url, self.keyrings, self.cache, self.signers, self.insecure, self.offline, self.signed, link, vouched,
            self.derived, self.lazy,
        )  # fmt: skip


def open_from_metalink(link: str, checks: Checks) -> Repository:
    """Open the repository at the mirrors its metalink lists (no --mirror given), most preferred first: one that
    cannot be reached or serves a state the metalink does not vouch for (a mirror behind) gives way to the next, as
    dnf does. Offline, the mirror the cached state came from."""
    checks = dataclasses.replace(checks, lazy=False)  # a mirror whose metadata fails gives way to the next
    if checks.offline:
        base = _Slot(checks.cache, link).base()
        if base is None:
            raise BootstrapError(f"--offline: no state of {link} is in the cache", "run once without --offline")
        return checks.open(base, link)
    doc = fetch_metalink(link)
    if not doc.mirrors:
        raise MirrorError(f"{link} lists no http or https mirror of the repository", "pass --mirror")
    failed: BootstrapError | None = None
    for base in doc.mirrors[:MIRROR_TRIES]:
        try:
            return checks.open(base, link, doc)
        except (NetworkError, ChecksumError, SignatureError) as exc:
            log.info("%s: %s; the metalink's next mirror", base, exc.message)
            failed = exc
    assert failed is not None
    raise failed
