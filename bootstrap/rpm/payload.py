"""An .rpm's payload decompressed as a stream, by the compressor its signed header names."""

import bz2
import gzip
import lzma
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import zstandard

from bootstrap.errors import UnpackError
from bootstrap.rpm import tags
from bootstrap.rpm.header import Layout


def _reader(raw: BinaryIO, compressor: str, what: str) -> BinaryIO:
    if compressor == "gzip":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]
    if compressor in ("xz", "lzma"):
        return lzma.LZMAFile(raw)  # type: ignore[return-value]
    if compressor == "bzip2":
        return bz2.BZ2File(raw)  # type: ignore[return-value]
    if compressor == "zstd":
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    raise UnpackError(f"{what}: unknown payload compressor {compressor!r}", "the package is corrupt")


@contextmanager
def opened(path: Path, layout: Layout, what: str) -> Iterator[BinaryIO]:
    """The uncompressed payload (a cpio archive) of the package at `path`; decompression errors become
    UnpackError."""
    fmt = layout.main.string(tags.PAYLOADFORMAT) or "cpio"
    if fmt != "cpio":
        raise UnpackError(f"{what}: payload format {fmt!r} is not cpio", "the package is corrupt")
    compressor = layout.main.string(tags.PAYLOADCOMPRESSOR) or "gzip"
    with open(path, "rb") as raw:
        raw.seek(layout.payload)
        try:
            with _reader(raw, compressor, what) as stream:
                yield stream
        except (OSError, EOFError, lzma.LZMAError, zlib.error, zstandard.ZstdError) as exc:
            raise UnpackError(f"{what}: cannot decompress its payload ({exc})", "the package is corrupt") from None
