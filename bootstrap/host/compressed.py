"""Reading repository metadata files as they are stored (gzip, xz, zstd, bzip2 or plain), a bounded chunk at a
time and never past a limit: a small hostile file cannot expand into gigabytes, in memory or anywhere. Both
families' indexes are read so (an RPM repository's metadata files, a Debian archive's Packages files)."""

import bz2
import gzip
import hashlib
import io
import lzma
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

from bootstrap.errors import ChecksumError

CHUNK = 1 << 20
_CORRUPT = "the repository's metadata is corrupt (or hostile): use another mirror"
MAX_OPEN = 4 << 30
"""The most bytes any metadata file may expand to, whatever open-size repomd.xml gives (an unsigned repomd.xml
could name any)."""


def _reader(raw: BinaryIO, name: str) -> BinaryIO:
    """A reader of the uncompressed bytes (by the file name's suffix), each read at most as large as asked."""
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if name.endswith(".xz"):
        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    if name.endswith(".bz2"):
        return bz2.BZ2File(raw)  # type: ignore[return-value]
    if name.endswith(".zst"):
        return zstandard.ZstdDecompressor().stream_reader(raw)
    return raw


def chunks(
    path: Path, name: str, limit: int | None, sha256: str | None, what: str, bound: int | None = None
) -> Iterator[bytes]:
    """The uncompressed content of `path` (compressed as `name`'s suffix says), refused past `limit` bytes (the
    size the signed index gives: repomd.xml's open-size, a Release's uncompressed entry) or `bound` (MAX_OPEN), or
    when it does not hash to `sha256` (the uncompressed checksum the index gives)."""
    with open(path, "rb") as raw:
        yield from _chunks(raw, name, limit, sha256, what, bound)


def inflate(
    data: bytes, name: str, limit: int | None, sha256: str | None, what: str, bound: int | None = None
) -> bytes:
    """`chunks` of a file already read (`data`), whole."""
    return b"".join(_chunks(io.BytesIO(data), name, limit, sha256, what, bound))


def _chunks(
    raw: BinaryIO, name: str, limit: int | None, sha256: str | None, what: str, bound: int | None
) -> Iterator[bytes]:
    bound = MAX_OPEN if bound is None else bound
    bound = bound if limit is None else min(limit, bound)
    digest = hashlib.sha256()
    total = 0
    try:
        with _reader(raw, name) as f:
            while out := f.read(CHUNK):
                total += len(out)
                if total > bound:
                    raise ChecksumError(f"{what} expands past {bound} bytes", _CORRUPT)
                digest.update(out)
                yield out
    except (OSError, EOFError, lzma.LZMAError, zlib.error, zstandard.ZstdError) as exc:
        raise ChecksumError(f"{what}: cannot decompress ({exc})", _CORRUPT) from None
    if limit is not None and total != limit:
        raise ChecksumError(f"{what} holds {total} bytes, not the {limit} its signed index gives", _CORRUPT)
    if sha256 is not None and digest.hexdigest() != sha256:
        raise ChecksumError(f"{what} does not match the checksum its signed index gives", _CORRUPT)
