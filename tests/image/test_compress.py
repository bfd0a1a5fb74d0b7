"""Multi-core gzip: the bytes depend on the input and level only, never on the thread count."""

import gzip
import hashlib
import io
import os
import time
import zlib
from pathlib import Path

import deflate
import pytest

from bootstrap import prune
from bootstrap.cache import Cache
from bootstrap.image import compress


def squeeze(data: bytes, threads: int, chunk: int = 7919, members: compress.Members | None = None) -> bytes:
    out = io.BytesIO()
    g = compress.ParallelGzip(out.write, compress.LEVEL, threads, members)
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


def sample(blocks: int) -> bytes:
    """`blocks` different, compressible blocks."""
    return b"".join(
        (os.urandom(1024) + f"block {i} ".encode() * compress.BLOCK)[: compress.BLOCK] for i in range(blocks)
    )


def test_kept_members_give_the_same_bytes_and_are_used(tmp_path: Path) -> None:
    """A rebuild takes every member from the cache: same bytes; one changed block is compressed again."""
    data = sample(3)
    plain = squeeze(data, 2)
    members = compress.Members(tmp_path, compress.LEVEL)
    assert squeeze(data, 2, members=members) == plain
    kept = sorted(tmp_path.iterdir())
    assert len(kept) == 3
    stamp = time.time() - 3600
    for path in kept:
        os.utime(path, (stamp, stamp))
    assert squeeze(data, 2, members=members) == plain
    assert all(p.stat().st_mtime > stamp for p in kept), "a member taken from the cache is marked as used"
    changed = data[: compress.BLOCK] + b"X" + data[compress.BLOCK + 1 :]
    assert squeeze(changed, 2, members=members) == squeeze(changed, 1)
    assert len(list(tmp_path.iterdir())) == 4


def test_a_member_that_does_not_inflate_to_its_block_is_not_used(tmp_path: Path) -> None:
    """The cache is not trusted for content: a member bound (with a good derived-file digest) to a block it does
    not hold, or a damaged file, is removed and the block compressed again."""
    data = sample(2)
    members = compress.Members(tmp_path, compress.LEVEL)
    plain = squeeze(data, 1, members=members)
    first, second = (hashlib.sha256(data[i * compress.BLOCK : (i + 1) * compress.BLOCK]).hexdigest() for i in (0, 1))
    members.put(first, bytes(deflate.gzip_compress(b"something else entirely", compress.LEVEL)))
    path = members._path(second)
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert squeeze(data, 2, members=members) == plain
    assert members.get(data[: compress.BLOCK], first) is not None, "both were compressed and kept again"
    assert members.get(data[compress.BLOCK :], second) is not None


def test_least_recently_used_members_go_beyond_the_limit(tmp_path: Path) -> None:
    """Kept members go by the cache's one pruning mechanism (bootstrap.prune), least recently used first."""
    cache = Cache(tmp_path / "cache").ensure()
    members = compress.Members(cache.area("gzip"), compress.LEVEL)
    squeeze(sample(4), 2, members=members)
    paths = sorted(cache.area("gzip").iterdir())
    for age, path in enumerate(paths):
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
    sizes = [p.stat().st_size for p in paths]
    prune.prune(cache, sum(sizes[2:]))
    assert sorted(cache.area("gzip").iterdir()) == paths[2:]
