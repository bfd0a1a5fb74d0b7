"""primary.xml and filelists.xml, once verified, read by libsolv (the reader and solver dnf uses): in C, about ten
times faster than a reader in Python, which matters at a real distribution's scale (AppStream's file lists hold
about a million paths). The result is each package's record and libsolv's own form of the whole listing, which
the resolver loads (`resolve.py`); no relation or file list passes through Python.

A listing is kept as a derived file of the cache (`cached`), bound to the sha256 of the metadata files it was read
from (which the signed repomd.xml gives) and self-checked, as the Debian family keeps its parsed indexes: a later
build of the same repository state reads it back instead of the metadata. `verify` reads the metadata again."""

import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field, fields
from pathlib import Path

import solv

from bootstrap.errors import ChecksumError
from bootstrap.host.cache import discard, made_by, read_derived, write_derived
from bootstrap.log import log
from bootstrap.numbers import is_decimal
from bootstrap.rpm.packages import Package

FORMAT = "bootstrap rpm listing 1"
"""Names the kept listing's layout: a new layout is a new name, and the old files are never taken."""

PROLOG = 64 << 10
"""How far into a metadata file its root element must start (createrepo_c writes only the XML declaration first)."""


@dataclass(frozen=True)
class Listing:
    """The packages of one repository's verified primary.xml (their file lists completed from filelists.xml)."""

    packages: tuple[Package, ...]
    solv: bytes = field(repr=False)
    """The same packages in libsolv's format, their relations and file lists included, in the same order."""


def new_pool(arch: str = "") -> solv.Pool:
    """An RPM pool (for `arch`, when resolving for one)."""
    pool = solv.Pool()
    pool.setdisttype(solv.Pool.DISTTYPE_RPM)
    if arch:
        pool.setarch(arch)
    return pool


@contextmanager
def _file(data: bytes | Iterable[bytes], mode: str = "r") -> Iterator[solv.SolvFp]:
    """A libsolv file over memory holding `data` (a memfd, read or written from its start)."""
    fd = os.memfd_create("bootstrap-listing", os.MFD_CLOEXEC)
    try:
        with open(fd, "wb", closefd=False) as out:  # a buffered writer: each chunk written whole
            for chunk in [data] if isinstance(data, bytes) else data:
                out.write(chunk)
        os.lseek(fd, 0, os.SEEK_SET)
        f = solv.xfopen_fd("", fd, mode)
        try:
            yield f
        finally:
            f.close()
    finally:
        os.close(fd)


def _root_start(head: bytes) -> int | None:
    """Where the root element starts in `head`, the document's beginning: after the XML declaration, processing
    instructions and comments, or None when `head` ends first. Any other declaration there (a document type, where
    XML declares entities; repository metadata never has one) is refused."""
    at = 0
    while (at := head.find(b"<", at)) >= 0:
        for opening, closing in ((b"<?", b"?>"), (b"<!--", b"-->")):
            if head.startswith(opening, at):
                end = head.find(closing, at + len(opening))
                if end < 0:
                    return None
                at = end + len(closing)
                break
        else:
            if head.startswith(b"<!", at):
                raise ValueError("declares XML entities")
            return at
    return None


def _checked(chunks: Iterable[bytes], root: bytes, what: str) -> Iterator[bytes]:
    """`chunks`, refused when the document declares anything before its root element (a document type, where XML
    declares entities) or its root element is not `root`, found within PROLOG bytes."""
    rest = iter(chunks)
    head = b""
    at: int | None = None
    try:
        for chunk in rest:
            head += chunk
            at = _root_start(head)
            if at is not None or len(head) > PROLOG:
                break
    except ValueError:
        raise ChecksumError(f"{what} declares XML entities", "repository metadata never does: it is hostile") from None
    if at is None or not head.startswith(b"<" + root, at):
        raise ChecksumError(f"{what} has no <{root.decode()}> element", "the repository's metadata is corrupt")
    yield head
    yield from rest


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or ["no reason given"])[0]


def _add(repo: solv.Repo, chunks: Iterable[bytes], what: str, root: bytes, flags: int) -> None:
    """Parse one metadata file into `repo`, read whole (and so checked against repomd.xml) before libsolv sees it."""
    with _file(_checked(chunks, root, what)) as f:
        if not repo.add_rpmmd(f, None, flags):
            why = _first_line(repo.pool.errstr.removeprefix("repo_rpmmd: "))
            raise ChecksumError(f"{what} is not well-formed repository metadata ({why})", "the metadata is corrupt")


def _epoch_version_release(evr: str, what: str) -> tuple[int, str, str]:
    epoch, colon, rest = evr.partition(":")
    if not colon:
        epoch, rest = "0", evr
    version, _, release = rest.rpartition("-")
    if not is_decimal(epoch):
        raise ChecksumError(
            f"{what}: epoch {epoch!r} of {evr!r} is not a number", "the repository's metadata is corrupt"
        )
    return int(epoch), version, release


def _record(s: solv.XSolvable, what: str) -> Package:
    checksum = s.lookup_checksum(solv.SOLVABLE_CHECKSUM)
    if checksum is None or checksum.type != solv.REPOKEY_TYPE_SHA256:
        raise ChecksumError(
            f"{what}: package {s.name} has no sha256 checksum", "the repository is too old for a verified build"
        )
    epoch, version, release = _epoch_version_release(s.evr, f"{what}: package {s.name}")
    location = s.lookup_location()[0] or ""
    return Package(
        name=s.name,
        epoch=epoch,
        version=version,
        release=release,
        arch=s.arch,
        location=location,
        sha256=checksum.hex(),
        size=s.lookup_num(solv.SOLVABLE_DOWNLOADSIZE),
        sourcerpm=s.lookup_sourcepkg() or "",
        license=s.lookup_str(solv.SOLVABLE_LICENSE) or "",
        vendor=s.lookup_str(solv.SOLVABLE_VENDOR) or "",
        packager=s.lookup_str(solv.SOLVABLE_PACKAGER) or "",
    )


Document = tuple[Iterable[bytes], str]
"""A metadata file as the chunks `compressed.chunks` yields (read to its end, where they prove it is the file
repomd.xml names, before it is parsed), and where it is from, for messages."""


def read(primary: Document, filelists: Document | None = None) -> Listing:
    """The packages of a primary.xml, and the file lists of its filelists.xml."""
    pool = new_pool()
    repo = pool.add_repo("listing")
    _add(repo, *primary, b"metadata", 0)
    if filelists is not None:
        _add(repo, *filelists, b"filelists", solv.Repo.REPO_EXTEND_SOLVABLES)
    repo.internalize()
    packages = tuple(_record(s, primary[1]) for s in repo.solvables)
    with _file(b"", "w") as f:
        repo.write(f)
        f.flush()
        with open(f.fileno(), "rb", closefd=False) as written:
            written.seek(0)
            return Listing(packages, written.read())


def load(pool: solv.Pool, name: str, listing: Listing) -> dict[int, Package]:
    """`listing` added to `pool` as the repository `name`: its records by solvable id."""
    repo = pool.add_repo(name)
    with _file(listing.solv) as f:
        if not repo.add_solv(f):
            why = _first_line(pool.errstr)
            raise ChecksumError(f"{name}: libsolv cannot read back its listing ({why})", "remove the cache's parsed/")
    solvables = list(repo.solvables)
    if len(solvables) != len(listing.packages):
        raise ChecksumError(
            f"{name}: libsolv read back {len(solvables)} packages of {len(listing.packages)}",
            "remove the cache's parsed/",
        )
    return {s.id: pkg for s, pkg in zip(solvables, listing.packages, strict=True)}


def cached(area: Path, sources: Sequence[str], make: Callable[[], Listing]) -> Listing:
    """The listing of the metadata files whose sha256s are `sources`: kept in `area` by an earlier build (bound to
    them and to the libsolv build that wrote its solv form, self-checked), else made by `make` and kept when
    libsolv reads its solv form back as its records say (a listing that does not is used, never kept)."""
    key = hashlib.sha256(" ".join([FORMAT, libsolv_build(), *sources]).encode()).hexdigest()
    path = area / f"{key}.listing"
    sections = read_derived(path, key)
    if sections is not None:
        kept = _kept(sections)
        if kept is not None:
            return kept
        discard(path, "does not read back as a listing")
    made = make()
    if _fits(made):
        rows = json.dumps([record_row(p) for p in made.packages], separators=(",", ":")).encode()
        write_derived(path, key, [rows, made.solv])
    else:
        log.debug("%s: libsolv does not read the listing back as it was made: not kept", path.name)
    return made


@functools.cache
def libsolv_build() -> str:
    """The libsolv build in use, as its compiled module's file is (size, change time, inode; the wheel and the
    distributions' python3-solv both have `solv._solv`): a kept listing's solv form was checked against the
    records by the build that wrote it, and is taken back by that build only."""
    return made_by(getattr(solv, "_solv", solv).__file__)


def _fits(made: Listing) -> bool:
    """Whether libsolv reads `made`'s solv form back as the packages its records name, in their order."""
    pool = new_pool()
    try:
        loaded = load(pool, "made", made)
    except ChecksumError:
        return False
    solvables = pool.solvables
    return all(
        (solvables[sid].name, solvables[sid].arch, solvables[sid].evr) == (p.name, p.arch, p.evr)
        for sid, p in loaded.items()
    )


_TYPES = tuple(int if f.type in (int, "int") else str for f in fields(Package))


def is_record(row: object) -> bool:
    """Whether `row` (JSON read back) is a record as `record_row` gives it."""
    return (
        isinstance(row, list)
        and len(row) == len(_TYPES)
        and all(type(v) is t for v, t in zip(row, _TYPES, strict=True))
    )


def record_row(record: Package) -> list[object]:
    """A record as a JSON row (`Package(*row)` gives it back)."""
    return list(astuple(record))


def _kept(sections: list[bytes]) -> Listing | None:
    """A kept listing's sections as a listing, or None when they are not one (another layout). Its records were
    checked against its solv form when it was kept, by this libsolv build (`cached`)."""
    if len(sections) != 2:
        return None
    try:
        rows = json.loads(sections[0])
    except ValueError:
        return None
    if not isinstance(rows, list) or not all(is_record(r) for r in rows):
        return None
    return Listing(tuple(Package(*r) for r in rows), sections[1])
