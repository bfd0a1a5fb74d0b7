"""Multi-core gzip: the bytes depend on the input and level only, never on the thread count."""

import gzip
import io
import os

import pytest

from bootstrap.image import compress


def squeeze(data: bytes, threads: int, chunk: int = 7919) -> bytes:
    out = io.BytesIO()
    g = compress.ParallelGzip(out.write, 9, threads)
    for i in range(0, len(data), chunk):
        g.write(data[i : i + chunk])
    g.close()
    return out.getvalue()


@pytest.mark.parametrize("size", [0, 1, compress.BLOCK - 1, compress.BLOCK, 3 * compress.BLOCK + 12345])
def test_round_trip_and_thread_independence(size: int) -> None:
    data = (os.urandom(1024) + b"repetitive text " * 200) * (size // 4224 + 1)
    data = data[:size]
    one = squeeze(data, 1)
    assert gzip.decompress(one) == data
    assert squeeze(data, 2) == one and squeeze(data, 4, chunk=1 << 16) == one


def test_compresses_like_gzip() -> None:
    data = b"".join(f"line {i} of a fairly compressible file\n".encode() for i in range(200_000))
    ours = squeeze(data, 2)
    assert len(ours) < len(gzip.compress(data, 6)) * 1.02
