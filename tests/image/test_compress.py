"""Multi-core gzip: the bytes depend on the input and level only, never on the thread count."""

import gc
import gzip
import hashlib
import io
import os
import threading
import time
import zlib
from dataclasses import astuple
from pathlib import Path

import deflate
import pytest

from bootstrap.host import prune
from bootstrap.host.cache import Cache, read_derived
from bootstrap.image import compress, inflate, layer


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
    changed = data[: compress.BLOCK] + bytes([data[compress.BLOCK] ^ 0xFF]) + data[compress.BLOCK + 1 :]  # a change
    assert squeeze(changed, 2, members=members) == squeeze(changed, 1)
    assert len(list(tmp_path.iterdir())) == 4


def test_a_member_that_does_not_inflate_to_its_block_is_not_used(tmp_path: Path) -> None:
    """The cache is not trusted for content: a member bound (with a good derived-file digest) to a block it does
    not hold, or a damaged file, is removed and the block compressed again."""
    data = sample(2)
    members = compress.Members(tmp_path, compress.LEVEL)
    plain = squeeze(data, 1, members=members)
    first, second = (compress.block_key(data[i * compress.BLOCK : (i + 1) * compress.BLOCK]) for i in (0, 1))
    members.put(first, bytes(deflate.gzip_compress(b"something else entirely", compress.LEVEL)))
    path = members._path(second)
    raw = bytearray(path.read_bytes())
    raw[-100] ^= 0xFF
    path.write_bytes(bytes(raw))
    assert squeeze(data, 2, members=members) == plain
    assert members.get(data[: compress.BLOCK], first) is not None, "both were compressed and kept again"
    assert members.get(data[compress.BLOCK :], second) is not None


def _kept_first_block(tmp_path: Path, blocks: int) -> tuple[bytes, compress.Members, bytes, bytes, str, bytes]:
    """`blocks` blocks of sample data squeezed once with kept members: (the data, the members, the plain
    output, the first block, its key, the member kept for it)."""
    data = sample(blocks)
    members = compress.Members(tmp_path, compress.LEVEL)
    plain = squeeze(data, 1, members=members)
    block = data[: compress.BLOCK]
    digest = compress.block_key(block)
    (good,) = read_derived(members._path(digest), digest) or [b""]
    return data, members, plain, block, digest, good


def test_a_member_with_a_second_member_appended_is_not_used(tmp_path: Path) -> None:
    """A kept member followed by a second gzip member (its trailer naming the block's size, so that libdeflate,
    which sizes its buffer from the last trailer and stops after the first member, inflates the pair to the
    block) is refused: a reader of the layer would inflate the second member too, into the image's tar."""
    data, members, plain, block, digest, good = _kept_first_block(tmp_path, 2)
    appended = good + bytes(deflate.gzip_compress(b"\0" * len(block), compress.LEVEL))
    assert deflate.gzip_decompress(appended) == block, "the forgery passes an inflate of the first member"
    for forged in (appended, good + b"\0" * 8, good[:3] + b"\x08" + good[4:]):
        members.put(digest, forged)
        assert members.get(block, digest) is None
        assert not members._path(digest).exists(), "the forged member was removed"
    members.put(digest, appended)
    assert squeeze(data, 2, members=members) == plain
    assert members.get(block, digest) == good, "the block was compressed and kept again"


def test_only_one_plain_member_of_exactly_the_block_counts() -> None:
    block = b"some block " * 1000
    member = bytes(deflate.gzip_compress(block, compress.LEVEL))
    assert compress.is_member_of(member, block)
    assert not compress.is_member_of(member + member, block)
    assert not compress.is_member_of(member, block + b"x"), "a member of a shorter block"
    assert not compress.is_member_of(member, block[:-1]), "a member of a longer block"
    assert not compress.is_member_of(gzip.compress(block, mtime=0)[:-1], block), "truncated"
    named = io.BytesIO()
    with gzip.GzipFile("name", "wb", fileobj=named, mtime=0) as g:
        g.write(block)
    assert gzip.decompress(named.getvalue()) == block and not compress.is_member_of(named.getvalue(), block)


@pytest.mark.parametrize("size", [0, 1, 100, 4096, 65537, 1 << 20])
def test_members_of_any_kind_of_block_count_and_any_slack_after_them_does_not(size: int) -> None:
    """Stored (incompressible), fixed and dynamic Huffman blocks, at any level: the member is taken; with one
    byte or a whole member after it, it is not."""
    for block in (os.urandom(size), bytes(size), (b"text %d " * size)[:size], (os.urandom(16) * size)[:size]):
        for level in (1, 6, 12):
            member = bytes(deflate.gzip_compress(block, level))
            assert compress.is_member_of(member, block), (size, level)
            assert not compress.is_member_of(member + b"\0", block)
            assert not compress.is_member_of(member + bytes(deflate.gzip_compress(bytes(size), 6)), block)


def test_least_recently_used_members_go_beyond_the_limit(tmp_path: Path) -> None:
    """Kept members go by the cache's one pruning mechanism (bootstrap.host.prune), least recently used first."""
    cache = Cache(tmp_path / "cache").ensure()
    members = compress.Members(cache.area("gzip"), compress.LEVEL)
    squeeze(sample(4), 2, members=members)
    paths = sorted(cache.area("gzip").iterdir())
    for age, path in enumerate(paths):
        os.utime(path, (1_000_000 + age, 1_000_000 + age))
    sizes = [p.stat().st_size for p in paths]
    prune.prune(cache, sum(sizes[2:]))
    assert sorted(cache.area("gzip").iterdir()) == paths[2:]


@pytest.mark.parametrize(
    ("at", "value"), [(4, 1), (8, 2), (9, 3)], ids=["a modification time", "another XFL", "another OS"]
)
def test_a_member_with_another_header_is_not_used(tmp_path: Path, at: int, value: int) -> None:
    """A member that inflates to its block but whose header differs from what libdeflate writes (a time, an XFL
    or an OS byte: a member zlib or an older build made) is not used: the layer's bytes never depend on what the
    cache held."""
    data, members, plain, block, digest, good = _kept_first_block(tmp_path, 1)
    other = bytearray(good)
    other[at] = value
    assert deflate.gzip_decompress(bytes(other)) == block and bytes(other) != good
    members.put(digest, bytes(other))
    assert members.get(block, digest) is None
    assert squeeze(data, 2, members=members) == plain
    assert members.get(block, digest) == good


def test_every_thread_frees_its_decompressor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The one-pass check allocates a libdeflate decompressor per thread: each is freed when its thread ends."""
    freed: list[int] = []
    real = inflate._Decompressor.__del__

    def counting(self: inflate._Decompressor) -> None:
        freed.append(self.handle)
        real(self)

    monkeypatch.setattr(inflate._Decompressor, "__del__", counting)
    block = b"a block " * 1000
    member = bytes(deflate.gzip_compress(block, compress.LEVEL))
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(inflate.one_member(member, len(block)) == bytearray(block)))
    ]
    threads += [threading.Thread(target=lambda: results.append(compress.is_member_of(member, block))) for _ in range(7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gc.collect()
    assert results == [True] * 8
    assert len(freed) == 8, "one decompressor each, freed as its thread ended"


def _tree(root: Path, blocks: int, seed: int = 0) -> Path:
    """A tree whose tar takes `blocks` gzip blocks and more: a few files of sample data."""
    (root / "usr/share/data").mkdir(parents=True, exist_ok=True)
    data = sample(blocks)
    step = compress.BLOCK // 3
    for i in range(0, len(data), step):
        (root / f"usr/share/data/part-{i // step:03d}").write_bytes(data[i : i + step] + bytes([seed]))
    return root


def _pack(root: Path, dest: Path, members: compress.Members | None) -> layer.Layer:
    """Pack `root`, then keep the layer under the members' key, as a build does."""
    if members is not None:
        members.directory.mkdir(exist_ok=True)
        if members.layer is not None:
            members.layer.parent.mkdir(exist_ok=True)
    packed = layer.pack(root, 1_700_000_000, dest, layer.Compression.GZIP, members=members)
    if members is not None:
        members.remember(packed.diff_id, packed.digest, packed.size, packed.tar_size)
    return packed


def _members(tmp_path: Path, key: str = "ab") -> compress.Members:
    """Kept members in `tmp_path`/kept, the layer kept under the key `key` * 32 in `tmp_path`/layers."""
    return compress.Members(tmp_path / "kept", compress.LEVEL, tmp_path / "layers" / (key * 32))


@pytest.fixture
def inflates(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each inflate that proves a kept member, by the size of its block."""
    calls: list[int] = []
    real = inflate.one_member

    def counted(member: bytes, size: int) -> bytearray | None:
        calls.append(size)
        return real(member, size)

    monkeypatch.setattr(inflate, "one_member", counted)
    return calls


def test_a_kept_layer_is_taken_without_inflating_its_members(tmp_path: Path, inflates: list[int]) -> None:
    """A rebuild of the layer kept under its key takes its members on the kept layer's word (no inflate), and gives
    the bytes a plain pack gives."""
    tree = _tree(tmp_path / "root", 3)
    plain = _pack(tree, tmp_path / "plain.tar.gz", None)
    first = _pack(tree, tmp_path / "first.tar.gz", _members(tmp_path))
    assert (first.digest, first.diff_id) == (plain.digest, plain.diff_id)
    assert inflates == [], "the first pack compressed every block"
    again = _members(tmp_path)
    assert again.kept is not None and len(again.kept.blocks) == 4
    second = _pack(tree, tmp_path / "second.tar.gz", again)
    assert (tmp_path / "second.tar.gz").read_bytes() == (tmp_path / "plain.tar.gz").read_bytes()
    assert second == layer.Layer(tmp_path / "second.tar.gz", *astuple(plain)[1:])
    assert inflates == [] and again.unproven, "every member was taken on the kept layer's word"
    other = _pack(tree, tmp_path / "other.tar.gz", _members(tmp_path, "cd"))
    assert other.digest == plain.digest and len(inflates) == 4, "under another key, every member is proven"


def test_a_kept_layer_that_is_not_this_one_is_packed_again_with_every_member_proven(
    tmp_path: Path, inflates: list[int]
) -> None:
    """The same key over a tree that changed after its first blocks (a script that is not reproducible): the
    members of the blocks that are the same are taken on the kept layer's word, the layer's digests then differ
    from the kept ones, and it is packed again with every member proven; what it gives is kept for the next."""
    tree = _tree(tmp_path / "root", 3)
    _pack(tree, tmp_path / "first.tar.gz", _members(tmp_path))
    (tree / "usr/share/data/part-011").write_bytes(b"changed at the end")
    plain = _pack(tree, tmp_path / "plain.tar.gz", None)
    members = _members(tmp_path)
    changed = _pack(tree, tmp_path / "changed.tar.gz", members)
    assert (tmp_path / "changed.tar.gz").read_bytes() == (tmp_path / "plain.tar.gz").read_bytes()
    assert changed.digest == plain.digest and len(inflates) >= 3, "packed again, the members inflated"
    after = _members(tmp_path)
    assert after.kept is not None and after.kept.digest == plain.digest, "the new layer is kept"


def test_without_again_a_kept_layer_that_is_not_this_one_is_an_error_after_one_pass(
    tmp_path: Path, inflates: list[int]
) -> None:
    """A settled build packs with `again` off: its layer, if it is the kept one, stands after one pass with no member
    inflated; if it is not, pack says so at once, with no second pass proving the members (the build then makes
    the whole tree again, every payload checked)."""
    tree = _tree(tmp_path / "root", 3)
    first = _pack(tree, tmp_path / "first.tar.gz", _members(tmp_path))
    same = layer.pack(tree, 1_700_000_000, tmp_path / "same.tar.gz", members=_members(tmp_path), again=False)
    assert (same.digest, same.diff_id) == (first.digest, first.diff_id) and inflates == []
    (tree / "usr/share/data/part-011").write_bytes(b"changed at the end")
    members = _members(tmp_path)
    with pytest.raises(layer.LayerMismatch, match="not the layer kept under its key"):
        layer.pack(tree, 1_700_000_000, tmp_path / "changed.tar.gz", members=members, again=False)
    assert inflates == [] and members.unproven, "one pass, on the kept layer's word, and no second"


def test_a_member_that_is_not_its_block_is_caught_by_the_kept_layer_s_digests(
    tmp_path: Path, inflates: list[int]
) -> None:
    """A member bound to a block's key but holding something else (what two blocks with one `block_key` would
    give) is taken on the kept layer's word; the blob's digest then is not the kept one, so the layer is packed
    again, the member inflated, refused and the block compressed again: the layer's bytes never come from it."""
    tree = _tree(tmp_path / "root", 2)
    plain = _pack(tree, tmp_path / "plain.tar.gz", _members(tmp_path))
    members = _members(tmp_path)
    assert members.kept is not None
    first = members.kept.blocks[0]
    members.put(first, bytes(deflate.gzip_compress(b"another block with the same key", compress.LEVEL)))
    again = _pack(tree, tmp_path / "again.tar.gz", members)
    assert (tmp_path / "again.tar.gz").read_bytes() == (tmp_path / "plain.tar.gz").read_bytes()
    assert again.digest == plain.digest
    assert compress.BLOCK in inflates, "the second pass inflated the member, and refused it"
    (good,) = read_derived(members._path(first), first) or [b""]
    assert gzip.decompress(good) == gzip.decompress((tmp_path / "plain.tar.gz").read_bytes())[: compress.BLOCK]


def test_a_kept_layer_that_is_not_proven_is_not_used(tmp_path: Path, inflates: list[int]) -> None:
    """A kept layer written by someone without the user's key (a cache restored from elsewhere), or damaged, is
    not read: every member is proven."""
    tree = _tree(tmp_path / "root", 2)
    _pack(tree, tmp_path / "first.tar.gz", _members(tmp_path))
    (path,) = (tmp_path / "layers").iterdir()
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0x01
    path.write_bytes(bytes(raw))
    members = _members(tmp_path)
    assert members.kept is None and not path.exists()
    _pack(tree, tmp_path / "again.tar.gz", members)
    assert len(inflates) == 3 and not members.unproven


def test_a_kept_layer_settles_when_two_packs_give_it(tmp_path: Path) -> None:
    """The first pack of a key keeps its layer unsettled; a second that gives the same layer settles it; one that
    gives another layer keeps that one, unsettled again."""
    tree = _tree(tmp_path / "root", 1)

    def packed() -> compress.Members:
        _pack(tree, tmp_path / "out.tar.gz", _members(tmp_path))
        return _members(tmp_path)

    first = packed()
    assert first.kept is not None and not first.settled
    second = packed()
    assert second.settled and second.kept is not None and second.kept.digest == first.kept.digest
    assert packed().settled, "a third pack of the same layer leaves it settled"
    (tree / "usr/share/data/part-000").write_bytes(b"another layer")
    changed = packed()
    assert changed.kept is not None and changed.kept.digest != first.kept.digest and not changed.settled


def test_without_again_the_tar_is_proven_by_its_blocks_keys_not_hashed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A settled build's tar is not hashed whole: its blocks' BLAKE3 keys, each the kept layer's, prove it is the
    kept layer's tar, whose diff_id it then has (the sha256 of what the blob inflates to). A tree changed in one
    block in the middle, or a member whose bytes are not the kept layer's, is not taken."""
    tree = _tree(tmp_path / "root", 3)
    first = _pack(tree, tmp_path / "first.tar.gz", _members(tmp_path))
    hashed: list[int] = []
    real = hashlib.sha256

    class Counted:
        def __init__(self) -> None:
            self.inner = real()
            hashed.append(0)
            self.at = len(hashed) - 1

        def update(self, data: bytes) -> None:
            hashed[self.at] += len(data)
            self.inner.update(data)

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    monkeypatch.setattr(hashlib, "sha256", Counted)
    same = layer.pack(tree, 1_700_000_000, tmp_path / "same.tar.gz", members=_members(tmp_path), again=False)
    assert same == layer.Layer(tmp_path / "same.tar.gz", *astuple(first)[1:])
    assert same.diff_id == "sha256:" + real(gzip.decompress((tmp_path / "same.tar.gz").read_bytes())).hexdigest()
    assert hashed and max(hashed) == same.size < same.tar_size, "the blob hashed, the tar not"
    monkeypatch.undo()

    members = _members(tmp_path)
    assert members.kept is not None
    middle = members.kept.blocks[1]
    path = members._path(middle)
    kept_member = path.read_bytes()
    members.put(middle, bytes(deflate.gzip_compress(b"not that block", compress.LEVEL)))
    with pytest.raises(layer.LayerMismatch):
        layer.pack(tree, 1_700_000_000, tmp_path / "forged.tar.gz", members=members, again=False)
    path.write_bytes(kept_member)

    part = tree / "usr/share/data/part-004"
    part.write_bytes(bytes([part.read_bytes()[0] ^ 1]) + part.read_bytes()[1:])
    members = _members(tmp_path)
    with pytest.raises(layer.LayerMismatch):
        layer.pack(tree, 1_700_000_000, tmp_path / "changed.tar.gz", members=members, again=False)
    kept = members.kept.blocks if members.kept is not None else ()
    assert members.blocks[0] == kept[0] and members.blocks[1:3] != list(kept[1:3]), "the middle block changed"
