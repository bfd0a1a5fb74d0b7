"""Reading an rpm payload's cpio archive (the `newc` format, "070701", or "070702" with checksums) as a stream:
one member at a time, its data read through a reader bounded to its size, nothing held whole. Every number is
bounded (name length, member count, data size against what the header says), so a hostile payload cannot make
the reader allocate or loop without end. A payload held in memory is read through `View`, whose reads are views of it:
a member's data reaches the file it is written to without a copy."""

import struct
from collections.abc import Iterator
from typing import NamedTuple, Protocol

from bootstrap.errors import UnpackError

MAGICS = (b"070701", b"070702")
HEAD = 110
MAX_NAME = 4096
TRAILER = "TRAILER!!!"
_HINT = "the package is corrupt or hostile; do not use this mirror"
_FIELDS = struct.Struct(">13I")
"""The header's 13 numbers after the magic, once its 104 hexadecimal digits are read as bytes."""


class Member(NamedTuple):
    name: str
    mode: int
    ino: int
    nlink: int
    size: int


class Stream(Protocol):
    """What the reader reads a payload from: a file, or a `View`."""

    def read(self, n: int = -1, /) -> bytes | memoryview: ...


class View:
    """A payload held in memory, read as a stream: each read is a view of it, not a copy."""

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)
        self._at = 0

    def read(self, n: int = -1, /) -> memoryview:
        end = len(self._view) if n < 0 else min(self._at + n, len(self._view))
        out = self._view[self._at : end]
        self._at = end
        return out


class Data:
    """The data of the current member: reads stop at its end."""

    def __init__(self, stream: Stream, size: int, what: str) -> None:
        self._stream = stream
        self.left = size
        self._what = what

    def read(self, n: int = -1) -> bytes | memoryview:
        n = self.left if n < 0 else min(n, self.left)
        if n == 0:
            return b""
        block = self._stream.read(n)
        if not block:
            raise UnpackError(f"{self._what}: its payload ends inside a file", _HINT)
        self.left -= len(block)
        return block

    def skip(self) -> None:
        while self.left:
            self.read(1 << 20)


def _exact(stream: Stream, n: int, what: str) -> bytes:
    block = stream.read(n)
    if len(block) == n:  # mostly: one read
        return bytes(block)
    out = bytes(block)
    while len(out) < n:
        block = stream.read(n - len(out))
        if not block:
            raise UnpackError(f"{what}: its payload ends inside a cpio header", _HINT)
        out += block
    return out


def members(stream: Stream, what: str, max_members: int, max_size: int) -> Iterator[tuple[Member, Data]]:
    """Each member up to the trailer, with its data (read or not: what is left is skipped before the next)."""
    offset = 0
    for _ in range(max_members + 1):
        head = _exact(stream, HEAD, what)
        if head[:6] not in MAGICS:
            if head[:6] == b"07070X":
                raise UnpackError(f"{what}: its payload is rpm's stripped cpio (files over 4 GiB)", "not supported")
            raise UnpackError(f"{what}: its payload is not a cpio newc archive", _HINT)
        try:  # exactly 104 hexadecimal digits (a space, a sign or an underscore among them leaves fewer bytes)
            fields = _FIELDS.unpack(bytes.fromhex(head[6:].decode("ascii")))
        except (ValueError, struct.error):  # UnicodeDecodeError is a ValueError
            raise UnpackError(f"{what}: a cpio header of its payload is not hexadecimal", _HINT) from None
        ino, mode, _uid, _gid, nlink, _mtime, size, _dmaj, _dmin, _rmaj, _rmin, namesize, _check = fields
        if namesize < 2 or namesize > MAX_NAME:
            raise UnpackError(f"{what}: a cpio member name of {namesize} bytes", _HINT)
        raw = _exact(stream, namesize + (-(HEAD + namesize)) % 4, what)[:namesize]
        offset += HEAD + len(raw)
        if raw[-1:] != b"\0" or b"\0" in raw[:-1]:
            raise UnpackError(f"{what}: a cpio member name is not one string", _HINT)
        name = raw[:-1].decode("utf-8", "surrogateescape")
        if name == TRAILER:
            return
        if size > max_size:
            raise UnpackError(f"{what}: cpio member {name!r} is larger than any file its header lists", _HINT)
        data = Data(stream, size, what)
        yield Member(name, mode, ino, nlink, size), data
        data.skip()
        _exact(stream, (-size) % 4, what)
    raise UnpackError(f"{what}: its payload holds more members than its header lists files", _HINT)
