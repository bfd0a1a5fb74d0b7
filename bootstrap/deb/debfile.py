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
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, BinaryIO, Protocol

import zstandard

from bootstrap.errors import ChecksumError, UnpackError
from bootstrap.host.cache import FileSection, Section, read_derived_large, read_verified, write_derived
from bootstrap.numbers import MAX_ID, is_decimal

MAX_CONTROL = 32 << 20
MAX_DATA = 2 << 30
"""Bounds on a decompressed control.tar and data.tar: far above any real package, far below a compression bomb.
A data.tar past MAX_DATA is refused."""
IN_MEMORY = 32 << 20
"""A decompressed data.tar up to this size is held in memory (every package of debian-slim is: the largest is
about 19 MB); a larger one goes to an unnamed file on disk as it inflates, so memory stays bounded."""
XZ_MEMORY = 128 << 20
"""The most an xz stream may ask for its dictionary (xz -9 asks 64 MiB)."""
CHUNK = 1 << 20
"""Decompressed data comes out at most this much at a time."""

NAME_MAX = 255
PATH_MAX = 4095

_MALFORMED = "the package is malformed: check the file or the mirror"
_DAMAGED = "the file is damaged or malformed: check the file or the mirror"
_HOSTILE = "the package is malformed or hostile (a compression bomb): do not use this mirror"


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    @property
    def needs_input(self) -> bool: ...

    def decompress(self, data: bytes, max_length: int = ..., /) -> bytes: ...


def _too_big(name: str, limit: int) -> UnpackError:
    return UnpackError(f"member {name} decompresses to more than {limit >> 20} MiB", _HOSTILE)


def _truncated(name: str) -> UnpackError:
    return UnpackError(f"member {name} is truncated (its compressed stream ends early)", _DAMAGED)


class _Spool:
    """Decompressed bytes, in order: held in memory up to `keep` bytes, past that in an unnamed file in
    `directory` (the system's temporary directory when None); more than `limit` bytes are refused."""

    def __init__(self, name: str, limit: int, keep: int, directory: Path | None) -> None:
        self.name, self.limit, self.keep, self.directory = name, limit, keep, directory
        self.memory = io.BytesIO()
        self.file: BinaryIO | None = None
        self.size = 0

    def write(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.size > self.limit:
            raise _too_big(self.name, self.limit)
        if self.file is None and self.size > self.keep:
            self.file = tempfile.TemporaryFile(dir=self.directory)  # noqa: SIM115 (closed by close())
            self.file.write(self.memory.getbuffer())
            self.memory = io.BytesIO()
        (self.file or self.memory).write(piece)

    def result(self) -> Section:
        if self.file is None:
            return self.memory.getvalue()
        self.file.flush()
        return FileSection(self.file, 0, self.size)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def _decompress(name: str, data: bytes, out: _Spool) -> None:
    if name.endswith(".xz"):
        _streams(name, data, out, lambda: lzma.LZMADecompressor(memlimit=XZ_MEMORY))
    elif name.endswith(".zst"):
        _zstd_frames(name, data, out)
    elif name.endswith(".gz"):
        _gzip_streams(name, data, out)
    elif name.endswith(".bz2"):
        _streams(name, data, out, bz2.BZ2Decompressor)
    elif name.endswith(".tar"):
        out.write(data)
    else:
        raise UnpackError(f"member {name} has an unknown compression", "dpkg supports xz, zstd, gzip, bzip2 or none")


def _streams(name: str, data: bytes, out: _Spool, new: Callable[[], _Decompressor]) -> None:
    """Every concatenated stream of an xz or bzip2 member, decoded to its end marker, CHUNK at a time."""
    while True:
        d = new()
        out.write(d.decompress(data, CHUNK))
        while not d.eof:
            if d.needs_input:
                raise _truncated(name)
            out.write(d.decompress(b"", CHUNK))
        data = d.unused_data
        if not data:
            return


def _gzip_streams(name: str, data: bytes, out: _Spool) -> None:
    """Every concatenated stream of a gzip member, decoded to its end, CHUNK at a time."""
    while True:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        pending = data
        while not d.eof:
            piece = d.decompress(pending, CHUNK)
            pending = d.unconsumed_tail
            if not piece and not pending and not d.eof:
                raise _truncated(name)
            out.write(piece)
        data = d.unused_data
        if not data:
            return


_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _zstd_frame_end(name: str, view: memoryview, pos: int) -> int:
    """Where the zstd frame (or skippable frame) starting at `pos` ends, walking its blocks: a frame that
    runs past the member's end is truncated."""
    magic = bytes(view[pos : pos + 4])
    if len(magic) == 4 and magic[1:] == b"\x2a\x4d\x18" and magic[0] & 0xF0 == 0x50:  # skippable
        if pos + 8 > len(view):
            raise _truncated(name)
        end = pos + 8 + int.from_bytes(view[pos + 4 : pos + 8], "little")
    elif magic == _ZSTD_MAGIC:
        if pos + 5 > len(view):
            raise _truncated(name)
        fhd = view[pos + 4]
        single, checksum, dict_id, fcs = fhd & 0x20, fhd & 0x04, fhd & 0x03, fhd >> 6
        end = pos + 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_id] + ((1 if single else 0), 2, 4, 8)[fcs]
        last = False
        while not last:
            if end + 3 > len(view):
                raise _truncated(name)
            header = int.from_bytes(view[end : end + 3], "little")
            last, kind, size = bool(header & 1), (header >> 1) & 3, header >> 3
            if kind == 3:
                raise UnpackError(f"member {name} is corrupt: a zstd block of a reserved type", _DAMAGED)
            end += 3 + (1 if kind == 1 else size)
        end += 4 if checksum else 0
    else:
        raise UnpackError(f"member {name} is corrupt: no zstd frame at byte {pos}", _DAMAGED)
    if end > len(view):
        raise _truncated(name)
    return end


def _zstd_frames(name: str, data: bytes, out: _Spool) -> None:
    """Every frame of a zstd member (dpkg accepts several), each whole (checked by walking its blocks, so
    the decoder below never meets an unfinished one), decoded CHUNK at a time."""
    view, pos = memoryview(data), 0
    while pos < len(view):
        pos = _zstd_frame_end(name, view, pos)
    reader = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True)
    while piece := reader.read(CHUNK):
        out.write(piece)


def decompress(
    name: str, data: bytes, limit: int = MAX_DATA, what: str = "", keep: int | None = None, spool: Path | None = None
) -> Section:
    """Decompress member `name` of package `what` by the name's suffix (xz, zst, gz, bz2 or none), every stream
    or frame to its end, to at most `limit` bytes: held in memory up to `keep` bytes (all of it when None),
    past that in an unnamed file in directory `spool`."""
    prefix = f"{what}: " if what else ""
    out = _Spool(name, limit, limit if keep is None else keep, spool)
    try:
        _decompress(name, data, out)
        return out.result()
    except UnpackError as exc:
        out.close()
        raise UnpackError(prefix + exc.message, exc.hint) from None
    except lzma.LZMAError as exc:
        out.close()
        if "memory usage limit" in str(exc).lower():
            raise UnpackError(
                f"{prefix}member {name} needs more than {XZ_MEMORY >> 20} MiB of memory to decompress", _HOSTILE
            ) from None
        raise UnpackError(f"{prefix}member {name} is corrupt: {exc}", _DAMAGED) from None
    except (zstandard.ZstdError, zlib.error, OSError, EOFError, ValueError) as exc:
        out.close()
        raise UnpackError(f"{prefix}member {name} is corrupt: {exc}", _DAMAGED) from None
    except BaseException:
        out.close()
        raise


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
        if not is_decimal(field):
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
    """The members of an uncompressed tar (in memory, or a section of a file), each checked before it is handed
    out: a size that is not negative and fits the archive, a name that fits the file system, owners a file can
    have, no sparse entries (dpkg has none). tarfile stops quietly at a damaged header; this does not: after the
    last member comes the end-of-archive block or, as dpkg also accepts, the end of the data."""

    def __init__(self, data: Section, what: str) -> None:
        self.what = what
        if isinstance(data, FileSection):
            self.file: BinaryIO = data.file
            self.start, self.end = data.start, data.start + data.size
        else:
            self.file, self.start, self.end = io.BytesIO(data), 0, len(data)
        try:
            self.file.seek(self.start)
            self.tar = tarfile.open(fileobj=self.file, mode="r:")  # noqa: SIM115 (closed by __exit__)
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
                if not (0 <= info.uid <= MAX_ID and 0 <= info.gid <= MAX_ID):
                    raise UnpackError(
                        f"{what}: member {info.name!r} belongs to {info.uid}:{info.gid}, no id a file can have",
                        _MALFORMED,
                    )
                if info.isreg() and info.offset_data + info.size > self.end:
                    raise UnpackError(
                        f"{what}: member {info.name!r} needs {info.size} bytes, more than the archive holds", _DAMAGED
                    )
                _check_name(info.name, what)
                _check_name(info.linkname, what, f"link target of {info.name!r}")
                yield info
        except tarfile.TarError as exc:
            raise UnpackError(f"{what}: corrupt tar archive: {exc}", _DAMAGED) from None
        end = self.tar.offset
        self.file.seek(end)
        if self.file.read(min(tarfile.BLOCKSIZE, max(self.end - end, 0))) not in (b"", bytes(tarfile.BLOCKSIZE)):
            raise UnpackError(f"{what}: tar archive is truncated or corrupt at byte {end - self.start}", _DAMAGED)

    def open(self, info: tarfile.TarInfo) -> IO[bytes]:
        """The content of a regular file member, to read as a stream."""
        f = self.tar.extractfile(info)
        return f if f is not None else io.BytesIO()

    def read(self, info: tarfile.TarInfo) -> bytes:
        """The content of a regular file member."""
        try:
            return self.open(info).read()
        except tarfile.TarError as exc:
            raise UnpackError(f"{self.what}: cannot read {info.name!r}: {exc}", _DAMAGED) from None


@dataclass(frozen=True)
class DebContents:
    """A .deb's control files (by member name) and its data tar, decompressed (in memory, or in a file when
    it is large: `close()` lets go of it)."""

    control: dict[str, bytes]
    data_tar: Section
    what: str = "package"

    def data(self) -> TarMembers:
        return TarMembers(self.data_tar, f"{self.what}: data.tar")

    def close(self) -> None:
        if isinstance(self.data_tar, FileSection):
            self.data_tar.file.close()


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


def parse(data: bytes, what: str, spool: Path | None = None) -> DebContents:
    """The contents of a .deb from its bytes: members in dpkg's order (debian-binary, control.tar.*,
    data.tar.*; members named `_...` are skipped, as dpkg does). A data.tar larger than IN_MEMORY is written
    to an unnamed file in directory `spool` as it inflates."""
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
    control_tar = decompress(control[0], control[1], MAX_CONTROL, what)
    assert isinstance(control_tar, bytes)  # held in memory whole: no `keep`
    files = _control_members(control_tar, f"{what}: {control[0]}")
    if "control" not in files:
        raise UnpackError(f"{what}: no control file", _MALFORMED)
    return DebContents(files, decompress(payload[0], payload[1], MAX_DATA, what, IN_MEMORY, spool), what)


# --- the cache of decompressed packages -----------------------------------------------------------------------


def _sections(contents: DebContents) -> list[Section]:
    names = list(contents.control)
    return ["\0".join(names).encode(), *(contents.control[n] for n in names), contents.data_tar]


def _from_sections(sections: list[Section] | None, what: str) -> DebContents | None:
    if sections is None:
        return None
    small = [s for s in sections[:-1] if isinstance(s, bytes)]
    try:
        names = small[0].decode().split("\0") if small else []
    except UnicodeDecodeError:
        names = []
    if len(small) != len(sections) - 1 or len(sections) != len(names) + 2:
        if isinstance(sections[-1], FileSection):
            sections[-1].file.close()
        return None
    return DebContents(dict(zip(names, small[1:], strict=True)), sections[-1], what)


def read(path: Path, sha256: str | None = None, expanded: Path | None = None, what: str = "") -> DebContents:
    """Read and decompress a .deb file (named `what` in errors: its file name when not given), checking its
    bytes against `sha256` when given.

    With `expanded` (a cache directory) and `sha256`, the decompressed members are kept there bound to that
    sha256, so the next build reads them back (and proves them) instead of decompressing again. A data.tar
    larger than IN_MEMORY stays on disk (in an unnamed file beside the cache, or the system's temporary
    directory), read as a stream; one past MAX_DATA is refused."""
    what = what or path.name
    slot = expanded / f"{sha256}.v1" if expanded is not None and sha256 is not None else None
    if slot is not None and sha256 is not None:
        cached = _from_sections(read_derived_large(slot, sha256, IN_MEMORY), what)
        if cached is not None:
            return cached
    data = path.read_bytes() if sha256 is None else read_verified(path, sha256)
    if data is None:
        raise ChecksumError(
            f"{what} is missing from the cache or changed after it was checked (expected sha256 {sha256})",
            "a damaged copy was removed: run the build again",
        )
    contents = parse(data, what, expanded)
    del data
    if slot is not None and sha256 is not None:
        try:
            write_derived(slot, sha256, _sections(contents))
        except BaseException:
            contents.close()
            raise
        for legacy in (f"{sha256}.tar", f"{sha256}.control"):  # the format before v1
            slot.with_name(legacy).unlink(missing_ok=True)
    return contents
