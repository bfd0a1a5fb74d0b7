"""The tar headers of a layer, byte for byte as Python's tarfile writes them in its PAX format (a ustar header,
preceded by a pax extended header when a field does not fit), made directly: tarfile's general code costs tens of
microseconds an entry, most of a large tree's packing, and these bytes are fixed here, whatever Python runs.

What goes to a pax header, in this order: the entry's own records (xattrs), then `path` and `linkpath` when the
name or link target is not ASCII or longer than its 100-byte field, then `uid`, `gid` (from 8**7), `size` and
`mtime` (from 8**11, or negative) as decimal strings, their ustar fields left 0. The pax header's records are
UTF-8, or the raw bytes (`hdrcharset=BINARY` first) when a value holds undecodable bytes (surrogate escapes)."""

BLOCK = 512
RECORD = 20 * BLOCK
"""The archive ends with two zero blocks, padded to a multiple of this (tarfile's record size)."""
REGTYPE, LNKTYPE, SYMTYPE, CHRTYPE, BLKTYPE, DIRTYPE, FIFOTYPE = b"0", b"1", b"2", b"3", b"4", b"5", b"6"
_PAX = b"x"
_MAGIC = b"ustar\x0000"
_EMPTY8 = bytes(8)
_TAIL = bytes(32 + 32)
"""uname and gname: always empty in a layer (numeric owners only)."""
_PREFIX = bytes(155 + 12)
"""The ustar prefix (unused: long names go to the pax header) and the block's last 12 bytes."""
_NUMBERS = (("uid", 8), ("gid", 8), ("size", 12), ("mtime", 12))


def _text(value: str, length: int) -> bytes:
    raw = value.encode("ascii", "replace")[:length]
    return raw + bytes(length - len(raw))


def _ustar(name: str, kind: bytes, mode: int, numbers: dict[str, int], linkname: str, device: tuple[int, int]) -> bytes:
    dev = b"%07o\0%07o\0" % device if kind in (CHRTYPE, BLKTYPE) else _EMPTY8 + _EMPTY8
    block = b"".join(
        (
            _text(name, 100),
            b"%07o\0" % (mode & 0o7777),
            b"%07o\0" % numbers["uid"],
            b"%07o\0" % numbers["gid"],
            b"%011o\0" % numbers["size"],
            b"%011o\0" % numbers["mtime"],
            b"        ",
            kind,
            _text(linkname, 100),
            _MAGIC,
            _TAIL,
            dev,
            _PREFIX,
        )
    )
    return block[:148] + b"%06o\0" % sum(block) + block[155:]


def _record(keyword: bytes, value: bytes) -> bytes:
    """One `LEN keyword=value\\n` record, LEN counting itself."""
    body = len(keyword) + len(value) + 3
    size = previous = 0
    while True:
        size = body + len(str(previous))
        if size == previous:
            return b"%d %s=%s\n" % (size, keyword, value)
        previous = size


def _pax(records: dict[str, str]) -> bytes:
    binary = any(not _utf8(v) for v in records.values())
    out = [b"21 hdrcharset=BINARY\n"] if binary else []
    for keyword, value in records.items():
        raw = value.encode("utf-8", "surrogateescape") if binary else value.encode("utf-8")
        out.append(_record(keyword.encode("utf-8"), raw))
    data = b"".join(out)
    head = _ustar("././@PaxHeader", _PAX, 0, {"uid": 0, "gid": 0, "size": len(data), "mtime": 0}, "", (0, 0))
    return head + data + bytes(-len(data) % BLOCK)


def _utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def header(
    name: str,
    kind: bytes,
    mode: int,
    uid: int,
    gid: int,
    size: int,
    mtime: int,
    linkname: str = "",
    device: tuple[int, int] = (0, 0),
    records: dict[str, str] | None = None,
) -> bytes:
    """The header blocks of one entry (a directory's name gets its trailing slash here)."""
    if kind == DIRTYPE and not name.endswith("/"):
        name += "/"
    pax = dict(records) if records else {}
    for text, keyword in ((name, "path"), (linkname, "linkpath")):
        if keyword not in pax and (not text.isascii() or len(text) > 100):
            pax[keyword] = text
    numbers = {"uid": uid, "gid": gid, "size": size, "mtime": mtime}
    for field, digits in _NUMBERS:
        value = numbers[field]
        if not 0 <= value < 8 ** (digits - 1):
            numbers[field] = 0
            pax.setdefault(field, str(value))
    head = _ustar(name, kind, mode, numbers, linkname, device)
    return _pax(pax) + head if pax else head


def padding(size: int) -> bytes:
    """The zero bytes that fill an entry's data of `size` bytes to a whole block."""
    return bytes(-size % BLOCK)


def end(offset: int) -> bytes:
    """What ends an archive whose entries took `offset` bytes: two zero blocks, then zeros to a whole record."""
    offset += 2 * BLOCK
    return bytes(2 * BLOCK + -offset % RECORD)
