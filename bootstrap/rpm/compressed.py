"""Reading repository metadata files as they are stored (gzip, xz, zstd, bzip2 or plain), a bounded chunk at a
time and never past a limit: a small hostile file cannot expand into gigabytes, in memory or anywhere."""

import bz2
import gzip
import hashlib
import lzma
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import zstandard

from bootstrap.errors import ChecksumError

CHUNK = 1 << 20
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


def chunks(path: Path, name: str, limit: int | None, sha256: str | None, what: str) -> Iterator[bytes]:
    """The uncompressed content of `path` (compressed as `name`'s suffix says), refused past `limit` bytes (the
    open-size repomd.xml gives) or MAX_OPEN, or when it does not hash to `sha256` (its open-checksum)."""
    bound = MAX_OPEN if limit is None else min(limit, MAX_OPEN)
    digest = hashlib.sha256()
    total = 0
    try:
        with open(path, "rb") as raw, _reader(raw, name) as f:
            while out := f.read(CHUNK):
                total += len(out)
                if total > bound:
                    raise ChecksumError(f"{what} expands past {bound} bytes", "the repository's metadata is corrupt")
                digest.update(out)
                yield out
    except (OSError, EOFError, lzma.LZMAError, zlib.error, zstandard.ZstdError) as exc:
        raise ChecksumError(f"{what}: cannot decompress ({exc})", "the repository's metadata is corrupt") from None
    if limit is not None and total != limit:
        raise ChecksumError(f"{what} holds {total} bytes, not the {limit} repomd.xml gives", "the metadata is corrupt")
    if sha256 is not None and digest.hexdigest() != sha256:
        raise ChecksumError(f"{what} does not match its open-checksum in repomd.xml", "the metadata is corrupt")
