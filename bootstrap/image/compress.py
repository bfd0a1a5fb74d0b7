"""Deterministic multi-core gzip: the stream is cut into fixed 4 MiB blocks, each compressed by libdeflate
as its own gzip member, on every core.

A file of several gzip members is one valid gzip stream (RFC 1952, section 2.2; Go's compress/gzip, which
Docker, containerd, skopeo and umoci use, reads them as one). The bytes depend only on the input, the level
and the pinned libdeflate, never on the number of threads: block boundaries are fixed.

Because they depend on nothing else, the members of earlier builds can be kept (`Members`): a block that a
previous build compressed, as a rebuild of unchanged packages gives again, is taken from there once it is shown
to inflate to exactly that block. Reading one marks it used; the cache's size cap (`bootstrap.host.prune`, after
every build) removes the least recently used.

A rebuild of the same package set usually gives the very layer of the build before. So each layer's blocks are
kept too, by a key the build gives (`KeptLayer`, under its package set's lock): while this layer's blocks are
those, in order, their members are taken without inflating them, and the layer is taken only when its tar and its
blob hash to what the kept layer says the earlier build's did (`Members.confirms`). Those two digests prove it:
the earlier build compressed exactly that tar into exactly those bytes. Otherwise the layer is packed again, every
member proven (`bootstrap.image.layer.pack`). A kept layer that two builds in a row gave is `settled`: the build
can then prove what it took from the cache by this layer too (`bootstrap.build.pipeline.build_platform`).

A block's key is its BLAKE3 digest (`block_key`), so a tar whose blocks have the kept layer's keys, one for one,
is the kept layer's tar: a settled build takes its sha256 from the kept layer rather than hashing the whole
stream again (`Members.proves`), a sixth of the CPU time a warm pack spends (BLAKE3 runs at several times
sha256's speed).
"""

import json
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import blake3
import deflate

from bootstrap.host.cache import read_derived, write_derived
from bootstrap.image import inflate
from bootstrap.log import log

BLOCK = 4 << 20
LEVEL = 6
"""libdeflate's level 6 compresses better than zlib's level 9 at several times its speed."""


@dataclass(frozen=True)
class KeptLayer:
    """What an earlier pack of a layer gave: its blocks' keys in order (`block_key`), the sha256 of its tar and of
    its blob, and whether the pack before it gave that same layer too (`settled`)."""

    blocks: tuple[str, ...]
    diff_id: str
    digest: str
    settled: bool = False
    size: int = 0
    """The blob's size."""
    tar_size: int = 0

    def encode(self) -> bytes:
        return json.dumps(
            {"blocks": self.blocks, "diff_id": self.diff_id, "digest": self.digest, "settled": self.settled,
             "size": self.size, "tar_size": self.tar_size}
        ).encode()  # fmt: skip

    @classmethod
    def decode(cls, data: bytes) -> "KeptLayer | None":
        try:
            got = json.loads(data)
            kept = cls(
                tuple(got["blocks"]), got["diff_id"], got["digest"], got["settled"], got["size"], got["tar_size"]
            )
        except (ValueError, KeyError, TypeError):
            return None
        texts = all(isinstance(v, str) for v in (*kept.blocks, kept.diff_id, kept.digest))
        sizes = all(type(v) is int and v >= 0 for v in (kept.size, kept.tar_size))
        return kept if texts and sizes and isinstance(kept.settled, bool) else None


class Members:
    """Gzip members of earlier builds, each bound to the key of the block it holds (`block_key`; a derived file);
    with `layer` (a path in the cache's area of kept layers, named by the key of the layer being packed), what
    the last pack of that key gave (`KeptLayer`)."""

    def __init__(self, directory: Path, level: int, layer: Path | None = None) -> None:
        self.directory = directory
        self.suffix = f".gz{level}-libdeflate{deflate.__version__}-b3"
        """Another level or libdeflate, or blocks named otherwise (`-b3`: by BLAKE3), keep their own."""
        self.header = bytes(deflate.gzip_compress(b"", level))[:10]
        """The header libdeflate begins every member with at this level (its XFL; no time; OS unknown)."""
        self.key = layer.name if layer is not None else ""
        self.layer = layer.with_name(layer.name + self.suffix) if layer is not None else None
        """The kept layer's file (its key, then the members' suffix: another level or libdeflate keeps its own)."""
        self.kept = self._kept_layer()
        self.predicting = self.kept is not None
        """Whether blocks the kept layer names are taken on its word (until `forget`)."""
        self.unproven = False
        """Whether a member was taken on the kept layer's word, not inflated (`confirms` then decides)."""
        self.blocks: list[str] = []
        """The keys of the blocks of the last layer packed, in order (`ParallelGzip` leaves them here)."""

    def _path(self, digest: str) -> Path:
        return self.directory / (digest + self.suffix)

    def _kept_layer(self) -> KeptLayer | None:
        if self.layer is None:
            return None
        sections = read_derived(self.layer, self.key)
        return KeptLayer.decode(sections[0]) if sections is not None and len(sections) == 1 else None

    @property
    def settled(self) -> bool:
        """Whether the last two packs of this key gave the same layer."""
        return self.kept is not None and self.kept.settled

    def expects(self, index: int, digest: str) -> bool:
        """Whether the kept layer's block `index` had the key `digest` (while predicting)."""
        blocks = self.kept.blocks if self.kept is not None and self.predicting else ()
        return index < len(blocks) and blocks[index] == digest

    def get(self, block: bytes | bytearray, digest: str, prove: bool = True) -> bytes | None:
        """The member kept for `block` (its `block_key`, `digest`), or None. It is used only when it is one gzip member,
        without optional header fields, that inflates to `block` itself with nothing after it: the cache is not
        trusted for content. Without `prove` (the kept layer names this block), only its header is checked here:
        `confirms` proves the layer as a whole."""
        path = self._path(digest)
        sections = read_derived(path, digest, prove)  # unproven: the layer's digest proves it (`confirms`)
        if sections is None or len(sections) != 1:
            return None
        if not prove and sections[0][:10] == self.header:
            self.unproven = True
            return sections[0]
        if not is_member_of(sections[0], block, self.header):
            log.debug("discarding %s: it is not one gzip member of the block it is bound to", path)
            path.unlink(missing_ok=True)
            return None
        return sections[0]

    def put(self, digest: str, member: bytes) -> None:
        write_derived(self._path(digest), digest, [member])

    def gave(self, diff_id: str, digest: str) -> bool:
        """Whether the kept layer is this one (its tar's and blob's sha256)."""
        return self.kept is not None and (self.kept.diff_id, self.kept.digest) == (diff_id, digest)

    def proves(self, digest: str) -> str | None:
        """The diff_id of the layer last packed when its blocks had the kept layer's keys, one for one, and its blob
        is the kept layer's (`digest`): each key a BLAKE3 digest, the tar is the one the kept layer's diff_id
        hashes; else None."""
        kept = self.kept
        if kept is None or tuple(self.blocks) != kept.blocks or digest != kept.digest:
            return None
        return kept.diff_id

    def confirms(self, diff_id: str, digest: str) -> bool:
        """Whether a layer packed with these members can stand: every member proven, or the layer the kept one
        says the earlier build packed, byte for byte."""
        return not self.unproven or self.gave(diff_id, digest)

    def forget(self) -> None:
        """Take nothing on the kept layer's word again (the layer is to be packed again, every member proven)."""
        self.predicting = False
        self.unproven = False

    def remember(self, diff_id: str, digest: str, size: int, tar_size: int) -> None:
        """Keep the layer last packed under its key, settled when the kept one was that layer too (call it only for
        a layer whose tree the build proved; a failure to write costs the next build its speed only)."""
        kept = KeptLayer(tuple(self.blocks), diff_id, digest, self.gave(diff_id, digest), size, tar_size)
        if self.layer is None or kept == self.kept:
            return
        try:
            write_derived(self.layer, self.key, [kept.encode()])
        except OSError as exc:
            log.debug("cache: cannot keep the layer %s: %s", self.key, exc)


def is_member_of(member: bytes, block: bytes | bytearray, header: bytes | None = None) -> bool:
    """Whether `member` is exactly one gzip member (a plain 10-byte header: no name, comment or extra field;
    with `header`, exactly those 10 bytes, so that no other time, flag or OS byte can make the layer's bytes
    depend on what the cache held) that inflates to `block`, with nothing after it.

    libdeflate's plain gzip_decompress stops at the end of the first member and ignores whatever follows (another
    member, which a reader of the layer would inflate too); its `_ex` form says how many bytes the member took, so
    one inflate proves both the content and that nothing follows the trailer (`bootstrap.image.inflate`)."""
    if len(member) < 18 or member[:4] != b"\x1f\x8b\x08\x00" or (header is not None and member[:10] != header):
        return False
    return inflate.one_member(member, len(block)) == block


def block_key(block: bytes | bytearray) -> str:
    """What a kept member is found by (64 hex digits): the block's BLAKE3 digest, computed at several times the
    speed of a sha256. A member is taken for a block only once it inflates to the block itself (`Members.get`), or
    on the word of a kept layer whose blocks had these keys (whose blob digest then proves it), and a tar whose
    blocks all have a kept layer's keys is that layer's tar (`Members.proves`): the keys need a cryptographic
    hash's strength."""
    return blake3.blake3(block).hexdigest()


def _member(block: bytes | bytearray, level: int, members: Members | None, index: int) -> tuple[bytes, str]:
    """The member of the layer's block `index`, and the block's key ("" without kept members)."""
    if members is None:
        return bytes(deflate.gzip_compress(block, level)), ""
    digest = block_key(block)
    kept = members.get(block, digest, prove=not members.expects(index, digest))
    if kept is not None:
        return kept, digest
    member = bytes(deflate.gzip_compress(block, level))
    members.put(digest, member)
    return member, digest


class ParallelGzip:
    """A write-only gzip stream whose compression runs on a thread pool (libdeflate releases the GIL)."""

    def __init__(
        self,
        emit: Callable[[bytes], object],
        level: int = LEVEL,
        threads: int | None = None,
        members: Members | None = None,
    ) -> None:
        self.emit = emit
        self.level = level
        self.kept = members
        self.threads = threads or min(os.cpu_count() or 1, 8)
        self.pool = ThreadPoolExecutor(max_workers=self.threads)
        self.pending: deque[Future[tuple[bytes, str]]] = deque()
        self.buf = bytearray()
        self.members = 0
        self.keys: list[str] = []
        """The blocks' keys, in order (with kept members)."""
        self.held: Future[tuple[bytes, str]] | None = None

    def _submit(self, block: bytes | bytearray) -> None:
        self.pending.append(self.pool.submit(_member, block, self.level, self.kept, self.members))
        self.members += 1
        while len(self.pending) > self.threads * 2:
            self._emit_next()

    def _emit_next(self) -> None:
        member, key = self.pending.popleft().result()
        if key:
            self.keys.append(key)
        self.emit(member)

    def write(self, data: bytes | bytearray) -> int:
        """Take `data` on; a whole block (as the layer's sink hands them) is kept as given, not copied, until the
        work on it is done: `held` is then that work (the caller changes the block only once it is done), else
        None."""
        if not self.buf and len(data) == BLOCK:
            self._submit(data)
            self.held = self.pending[-1]
            return len(data)
        self.held = None
        self.buf += data
        while len(self.buf) >= BLOCK:
            with memoryview(self.buf) as view:
                block = bytes(view[:BLOCK])
            del self.buf[:BLOCK]
            self._submit(block)
        return len(data)

    def close(self) -> None:
        if self.buf or not self.members:
            self._submit(bytes(self.buf))
        self.buf.clear()
        try:
            while self.pending:
                self._emit_next()
        finally:
            self.pool.shutdown()
        if self.kept is not None:
            self.kept.blocks = self.keys
