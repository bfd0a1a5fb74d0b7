"""The structure of an .rpm file (lead, signature header, main header, payload) and reading a header's tags,
bounded as rpm bounds them."""

import struct
from dataclasses import dataclass
from typing import BinaryIO

from bootstrap.errors import UnpackError

LEAD_SIZE = 96
LEAD_MAGIC = b"\xed\xab\xee\xdb"
HEADER_MAGIC = b"\x8e\xad\xe8\x01"
MAX_ENTRIES = 0xFFFF
MAX_DATA = 256 << 20
"""rpm's own bounds on a header: index entries and bytes of data."""

INT16, INT32, INT64, STRING, BIN, STRING_ARRAY, I18NSTRING = 3, 4, 5, 6, 7, 8, 9
_HINT = "the package is corrupt or not an rpm file"


@dataclass(frozen=True)
class Header:
    """One header: where it is in the file, its index and its data."""

    start: int
    end: int
    index: dict[int, tuple[int, int, int]]
    """tag -> (type, offset in data, count)."""
    data: bytes
    what: str

    def _at(self, tag: int, kind: int) -> tuple[int, int] | None:
        entry = self.index.get(tag)
        if entry is None:
            return None
        typ, offset, count = entry
        if typ != kind or offset > len(self.data):
            raise UnpackError(f"{self.what}: header tag {tag} has type {typ}, not {kind}", _HINT)
        return offset, count

    def binary(self, tag: int) -> bytes | None:
        at = self._at(tag, BIN)
        if at is None:
            return None
        offset, count = at
        if offset + count > len(self.data):
            raise UnpackError(f"{self.what}: header tag {tag} runs past the header's data", _HINT)
        return self.data[offset : offset + count]

    def strings(self, tag: int) -> list[str]:
        entry = self.index.get(tag)
        kind = entry[0] if entry and entry[0] in (STRING_ARRAY, I18NSTRING) else STRING
        at = self._at(tag, kind)
        if at is None:
            return []
        offset, count = at
        if count > len(self.data) - offset:  # each string takes a byte at least: a count past that is a lie
            raise UnpackError(f"{self.what}: header tag {tag} lists more strings than its data holds", _HINT)
        out = []
        for _ in range(count):
            end = self.data.find(b"\0", offset)
            if end < 0:
                raise UnpackError(f"{self.what}: header tag {tag} has an unterminated string", _HINT)
            out.append(self.data[offset:end].decode("utf-8", errors="replace"))
            offset = end + 1
        return out

    def count(self, tag: int) -> int | None:
        """How many values the index says tag `tag` has (None when it is absent), without reading them."""
        entry = self.index.get(tag)
        return None if entry is None else entry[2]

    def _ints(self, tag: int, kind: int, size: int, code: str) -> list[int]:
        at = self._at(tag, kind)
        if at is None:
            return []
        offset, count = at
        if offset + size * count > len(self.data):
            raise UnpackError(f"{self.what}: header tag {tag} runs past the header's data", _HINT)
        return list(struct.unpack(f">{count}{code}", self.data[offset : offset + size * count]))

    def int32(self, tag: int) -> list[int]:
        return self._ints(tag, INT32, 4, "I")

    def int16(self, tag: int) -> list[int]:
        return self._ints(tag, INT16, 2, "H")

    def int64(self, tag: int) -> list[int]:
        return self._ints(tag, INT64, 8, "Q")

    def string(self, tag: int) -> str:
        """A single string tag ("" when absent); an i18n string gives its first (C locale) value."""
        found = self.strings(tag)
        return found[0] if found else ""


def _read_exact(f: BinaryIO, n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise UnpackError(f"{what}: the file ends inside its headers", _HINT)
    return data


def read_header(f: BinaryIO, start: int, what: str) -> Header:
    f.seek(start)
    head = _read_exact(f, 16, what)
    if head[:4] != HEADER_MAGIC:
        raise UnpackError(f"{what}: no rpm header at byte {start}", _HINT)
    entries, size = struct.unpack(">II", head[8:16])
    if entries > MAX_ENTRIES or size > MAX_DATA:
        raise UnpackError(f"{what}: a header of {entries} entries and {size} bytes is past rpm's bounds", _HINT)
    raw = _read_exact(f, 16 * entries, what)
    index = {}
    for n in range(entries):
        tag, typ, offset, count = struct.unpack(">IIII", raw[16 * n : 16 * n + 16])
        index[tag] = (typ, offset, count)
    data = _read_exact(f, size, what)
    return Header(start, start + 16 + 16 * entries + size, index, data, what)


@dataclass(frozen=True)
class Layout:
    """Where the parts of an .rpm file are."""

    signature: Header
    main: Header

    @property
    def payload(self) -> int:
        """Offset of the (compressed) payload: everything after the main header."""
        return self.main.end


def read_layout(f: BinaryIO, what: str) -> Layout:
    lead = _read_exact(f, LEAD_SIZE, what)
    if lead[:4] != LEAD_MAGIC:
        raise UnpackError(f"{what}: not an rpm file", _HINT)
    signature = read_header(f, LEAD_SIZE, what)
    main = read_header(f, signature.end + (-signature.end) % 8, what)
    return Layout(signature, main)
