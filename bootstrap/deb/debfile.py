"""Reading .deb files: the ar container, the control members and the data tar, in any dpkg compression.

A .deb is checked as strictly as dpkg reads it, and any damage is a one-line UnpackError: members in dpkg's
order with sizes that fit the file, every compressed stream (and every zstd frame) decoded to its end and
within a size bound, tar members that fit the archive with nothing damaged after the last one, and names
that a file system and the dpkg database can hold.
"""

import bz2
import io
import lzma
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol

import zstandard

from bootstrap.cache import read_derived, read_verified, write_derived
from bootstrap.errors import ChecksumError, UnpackError

MAX_CONTROL = 256 << 20
MAX_DATA = 8 << 30
"""Bounds on a decompressed control.tar and data.tar: far above any real package, far below a compression bomb."""

NAME_MAX = 255
PATH_MAX = 4095
_ZSTD_STEP = 1 << 13
"""zstd input is fed in steps this size, so one step can never expand far past the bound (at most ~32768x)."""

_MALFORMED = "the package is malformed: check the file or the mirror"
_DAMAGED = "the file is damaged or malformed: check the file or the mirror"


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def _too_big(name: str, limit: int) -> UnpackError:
    return UnpackError(f"member {name} decompresses to more than {limit >> 20} MiB", _MALFORMED)


def _truncated(name: str) -> UnpackError:
    return UnpackError(f"member {name} is truncated (its compressed stream ends early)", _DAMAGED)


def _decompress(name: str, data: bytes, limit: int) -> bytes:
    if name.endswith(".xz"):
        return _streams(name, data, limit, lzma.LZMADecompressor)
    if name.endswith(".zst"):
        return _zstd_frames(name, data, limit)
    if name.endswith(".gz"):
        return _streams(name, data, limit, lambda: zlib.decompressobj(16 + zlib.MAX_WBITS))
    if name.endswith(".bz2"):
        return _streams(name, data, limit, bz2.BZ2Decompressor)
    if name.endswith(".tar"):
        if len(data) > limit:
            raise _too_big(name, limit)
        return data
    raise UnpackError(f"member {name} has an unknown compression", "dpkg supports xz, zstd, gzip, bzip2 or none")


def _streams(name: str, data: bytes, limit: int, new: Callable[[], _Decompressor]) -> bytes:
    """Every concatenated stream of an xz, gzip or bzip2 member, decoded to its end marker."""
    out: list[bytes] = []
    total = 0
    while True:
        d = new()
        piece = d.decompress(data, limit + 1 - total)
        total += len(piece)
        out.append(piece)
        if total > limit:
            raise _too_big(name, limit)
        if not d.eof:
            raise _truncated(name)
        data = d.unused_data
        if not data:
            return out[0] if len(out) == 1 else b"".join(out)


def _zstd_frames(name: str, data: bytes, limit: int) -> bytes:
    """Every frame of a zstd member (dpkg accepts several), each decoded to its end."""
    view = memoryview(data)
    out: list[bytes] = []
    total = pos = 0
    decompressor = zstandard.ZstdDecompressor()
    while pos < len(view):
        frame = decompressor.decompressobj()
        while not frame.eof:
            if pos >= len(view):
                raise _truncated(name)
            step = view[pos : pos + _ZSTD_STEP]
            pos += len(step)
            piece = frame.decompress(step)
            total += len(piece)
            if total > limit:
                raise _too_big(name, limit)
            out.append(piece)
        pos -= len(frame.unused_data)
    return b"".join(out)


def decompress(name: str, data: bytes, limit: int = MAX_DATA, what: str = "") -> bytes:
    """Decompress member `name` of package `what` by the name's suffix (xz, zst, gz, bz2 or none), every stream
    or frame to its end, to at most `limit` bytes."""
    prefix = f"{what}: " if what else ""
    try:
        return _decompress(name, data, limit)
    except UnpackError as exc:
        raise UnpackError(prefix + exc.message, exc.hint) from None
    except (lzma.LZMAError, zstandard.ZstdError, zlib.error, OSError, EOFError, ValueError) as exc:
        raise UnpackError(f"{prefix}member {name} is corrupt: {exc}", _DAMAGED) from None


def ar_members(data: bytes, what: str) -> list[tuple[str, bytes]]:
    """The members of an ar archive (the .deb container), in order; sizes are checked against the file."""
    if not data.startswith(b"!<arch>\n"):
        raise UnpackError(f"{what} is not a Debian package (no ar header)", "check the file or the mirror")
    members: list[tuple[str, bytes]] = []
    pos, end = 8, len(data)
    while pos < end:
        header = data[pos : pos + 60]
        if len(header) < 60:
            raise UnpackError(f"{what}: truncated ar member header at byte {pos}", _DAMAGED)
        if header[58:60] != b"`\n":
            raise UnpackError(f"{what}: corrupt ar member header at byte {pos}", _DAMAGED)
        field = header[48:58].rstrip(b" ")
        if not field.isdigit():
            raise UnpackError(f"{what}: corrupt ar member size {field!r} at byte {pos}", _DAMAGED)
        size, start = int(field), pos + 60
        name = header[:16].rstrip(b" ").decode("ascii", "replace").removesuffix("/")
        if start + size > end:
            raise UnpackError(f"{what}: ar member {name} needs {size} bytes, only {end - start} are left", _DAMAGED)
        members.append((name, data[start : start + size]))
        pos = start + size + (size & 1)
    return members


def _check_name(name: str, what: str, label: str = "member name") -> None:
    """A path the file system and the dpkg database (one path a line) can hold, as dpkg requires."""
    if "\0" in name or "\n" in name:
        raise UnpackError(f"{what}: {label} {name!r} has a NUL or newline byte", _MALFORMED)
    try:
        encoded = name.encode()
    except UnicodeEncodeError:
        raise UnpackError(f"{what}: {label} {name!r} is not valid UTF-8", _MALFORMED) from None
    if len(encoded) > PATH_MAX or any(len(part) > NAME_MAX for part in encoded.split(b"/")):
        raise UnpackError(f"{what}: {label} {name[:60]!r}... is too long", _MALFORMED)


class TarMembers:
    """The members of an uncompressed tar held in memory, each checked before it is handed out: a size that is
    not negative and fits the archive, a name that fits the file system, no sparse entries (dpkg has none).
    tarfile stops quietly at a damaged header; this does not: after the last member comes the end-of-archive
    block or, as dpkg also accepts, the end of the data."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data, self.what = data, what
        try:
            self.tar = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115 (closed by __exit__)
        except tarfile.TarError as exc:
            raise UnpackError(f"{what} is not a tar archive: {exc}", _DAMAGED) from None

    def __enter__(self) -> "TarMembers":
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.tar.close()

    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        what = self.what
        try:
            for info in self.tar:
                if info.size < 0:
                    raise UnpackError(f"{what}: member {info.name!r} has a negative size", _DAMAGED)
                if info.issparse():
                    raise UnpackError(f"{what}: member {info.name!r} is a sparse file", _MALFORMED)
                if info.isreg() and info.offset_data + info.size > len(self.data):
                    raise UnpackError(
                        f"{what}: member {info.name!r} needs {info.size} bytes, more than the archive holds", _DAMAGED
                    )
                _check_name(info.name, what)
                _check_name(info.linkname, what, f"link target of {info.name!r}")
                yield info
        except tarfile.TarError as exc:
            raise UnpackError(f"{what}: corrupt tar archive: {exc}", _DAMAGED) from None
        end = self.tar.offset
        if self.data[end : end + tarfile.BLOCKSIZE] not in (b"", bytes(tarfile.BLOCKSIZE)):
            raise UnpackError(f"{what}: tar archive is truncated or corrupt at byte {end}", _DAMAGED)

    def read(self, info: tarfile.TarInfo) -> bytes:
        """The content of a regular file member."""
        try:
            f = self.tar.extractfile(info)
            return f.read() if f is not None else b""
        except tarfile.TarError as exc:
            raise UnpackError(f"{self.what}: cannot read {info.name!r}: {exc}", _DAMAGED) from None


@dataclass(frozen=True)
class DebContents:
    """A .deb's control files (by member name) and its data tar, decompressed."""

    control: dict[str, bytes]
    data_tar: bytes
    what: str = "package"

    def data(self) -> TarMembers:
        return TarMembers(self.data_tar, f"{self.what}: data.tar")


def _control_members(data: bytes, what: str) -> dict[str, bytes]:
    """The files of control.tar: plain files directly in its top directory, as dpkg installs them."""
    control: dict[str, bytes] = {}
    with TarMembers(data, what) as tar:
        for info in tar:
            name = info.name.removeprefix("./")
            if info.isdir() and name in ("", "."):
                continue
            if not info.isreg():
                raise UnpackError(f"{what}: {info.name!r} is not a regular file", _MALFORMED)
            if "/" in name or name in ("", ".", "..", "list") or name in control:
                raise UnpackError(f"{what}: unexpected or repeated member {info.name!r}", _MALFORMED)
            control[name] = tar.read(info)
    return control


def parse(data: bytes, what: str) -> DebContents:
    """The contents of a .deb from its bytes: members in dpkg's order (debian-binary, control.tar.*,
    data.tar.*; members named `_...` are skipped, as dpkg does)."""
    members = ar_members(data, what)
    if not members or members[0][0] != "debian-binary":
        raise UnpackError(f"{what}: the first member is not debian-binary", _MALFORMED)
    if members[0][1].split(b"\n", 1)[0].strip() != b"2.0":
        raise UnpackError(f"{what}: not a format 2.0 Debian package", "check the file or the mirror")
    control: tuple[str, bytes] | None = None
    payload: tuple[str, bytes] | None = None
    for name, body in members[1:]:
        if name.startswith("_"):
            continue
        if name.startswith("control.tar") and control is None:
            control = (name, body)
        elif name.startswith("data.tar") and control is not None and payload is None:
            payload = (name, body)
        else:
            raise UnpackError(f"{what}: unexpected member {name!r}", _MALFORMED)
    if control is None or payload is None:
        raise UnpackError(f"{what}: missing control.tar or data.tar member", _MALFORMED)
    files = _control_members(decompress(control[0], control[1], MAX_CONTROL, what), f"{what}: {control[0]}")
    if "control" not in files:
        raise UnpackError(f"{what}: no control file", _MALFORMED)
    return DebContents(files, decompress(payload[0], payload[1], MAX_DATA, what), what)


# --- the cache of decompressed packages -----------------------------------------------------------------------


def _sections(contents: DebContents) -> list[bytes]:
    names = list(contents.control)
    return ["\0".join(names).encode(), *(contents.control[n] for n in names), contents.data_tar]


def _from_sections(sections: list[bytes] | None, what: str) -> DebContents | None:
    try:
        names = sections[0].decode().split("\0") if sections else []
    except UnicodeDecodeError:
        return None
    if sections is None or len(sections) != len(names) + 2:
        return None
    return DebContents(dict(zip(names, sections[1:-1], strict=True)), sections[-1], what)


def read(path: Path, sha256: str | None = None, expanded: Path | None = None) -> DebContents:
    """Read and decompress a .deb file, checking its bytes against `sha256` when given.

    With `expanded` (a cache directory) and `sha256`, the decompressed members are kept there bound to that
    sha256, so the next build reads them back (and proves them) instead of decompressing again."""
    what = path.name
    slot = expanded / f"{sha256}.v1" if expanded is not None and sha256 is not None else None
    if slot is not None and sha256 is not None:
        cached = _from_sections(read_derived(slot, sha256), what)
        if cached is not None:
            return cached
    data = path.read_bytes() if sha256 is None else read_verified(path, sha256)
    if data is None:
        raise ChecksumError(
            f"{what} is missing from the cache or changed after it was checked (expected sha256 {sha256})",
            "a damaged copy was removed: run the build again",
        )
    contents = parse(data, what)
    if slot is not None and sha256 is not None:
        write_derived(slot, sha256, _sections(contents))
        for legacy in (f"{sha256}.tar", f"{sha256}.control"):  # the format before v1
            slot.with_name(legacy).unlink(missing_ok=True)
    return contents
