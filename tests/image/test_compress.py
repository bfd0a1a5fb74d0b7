"""Multi-core gzip: the bytes depend on the input and level only, never on the thread count."""

import gzip
import io
import os
import zlib

import pytest

from bootstrap.image import compress


def squeeze(data: bytes, threads: int, chunk: int = 7919) -> bytes:
    out = io.BytesIO()
    g = compress.ParallelGzip(out.write, compress.LEVEL, threads)
    for i in range(0, len(data), chunk):
        g.write(data[i : i + chunk])
    g.close()
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, compress.BLOCK - 1, compress.BLOCK, 2 * compress.BLOCK + 12345])
def test_round_trip_and_thread_independence(size: int) -> None:
    data = ((os.urandom(1024) + b"repetitive text " * 200) * (size // 4224 + 1))[:size]
    one = squeeze(data, 1)
    assert gzip.decompress(one) == data
    assert squeeze(data, 2) == one and squeeze(data, 4, chunk=1 << 16) == one
    assert one[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff", "no time or name in the gzip header"


def test_members_read_as_one_stream_by_a_plain_zlib_reader() -> None:
    data = os.urandom(compress.BLOCK) + b"tail"
    blob = squeeze(data, 2)
    out, rest = b"", blob
    while rest:
        d = zlib.decompressobj(31)
        out += d.decompress(rest)
        rest = d.unused_data
    assert out == data


def test_compresses_better_than_zlib_default() -> None:
    data = b"".join(f"line {i} of a fairly compressible file\n".encode() for i in range(200_000))
    assert len(squeeze(data, 2)) < len(gzip.compress(data, 6))
