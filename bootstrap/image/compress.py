"""Deterministic multi-core gzip: the stream is cut into fixed 4 MiB blocks, each compressed by libdeflate
as its own gzip member, on every core.

A file of several gzip members is one valid gzip stream (RFC 1952, section 2.2; Go's compress/gzip, which
Docker, containerd, skopeo and umoci use, reads them as one). The bytes depend only on the input, the level
and the pinned libdeflate, never on the number of threads: block boundaries are fixed.

Because they depend on nothing else, the members of earlier builds can be kept (`Members`): a block that a
previous build compressed, as a rebuild of unchanged packages gives again, is taken from there once it is shown
to inflate to exactly that block. Reading one marks it used; the cache's size cap (`bootstrap.host.prune`, after
every build) removes the least recently used.
"""

import hashlib
import os
import struct
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import deflate

from bootstrap.host.cache import read_derived, write_derived
from bootstrap.image import inflate
from bootstrap.log import log

BLOCK = 4 << 20
LEVEL = 6
"""libdeflate's level 6 compresses better than zlib's level 9 at several times its speed."""


class Members:
    """Gzip members of earlier builds, each bound to the key of the block it holds (`block_key`; a derived file)."""

    def __init__(self, directory: Path, level: int) -> None:
        self.directory = directory
        self.suffix = f".gz{level}-libdeflate{deflate.__version__}"
        self.header = bytes(deflate.gzip_compress(b"", level))[:10]
        """The header libdeflate begins every member with at this level (its XFL; no time; OS unknown)."""

    def _path(self, digest: str) -> Path:
        return self.directory / (digest + self.suffix)

    def get(self, block: bytes | bytearray, digest: str) -> bytes | None:
        """The member kept for `block` (its `block_key`, `digest`), or None. It is used only when it is one gzip member,
        without optional header fields, that inflates to `block` itself with nothing after it: the cache is not
        trusted for content."""
        path = self._path(digest)
        sections = read_derived(path, digest)
        if sections is None or len(sections) != 1:
            return None
        if not is_member_of(sections[0], block, self.header):
            log.debug("discarding %s: it is not one gzip member of the block it is bound to", path)
            path.unlink(missing_ok=True)
            return None
        return sections[0]

    def put(self, digest: str, member: bytes) -> None:
        write_derived(self._path(digest), digest, [member])


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
    """What a kept member is found by (64 hex digits): a digest of the block's CRC-32, Adler-32 and length, which
    libdeflate computes at several times the speed of a sha256 of the block. No cryptographic strength is needed:
    a member is taken only once it inflates to the block itself (`Members.get`), so two blocks with one key cost a
    compression, nothing else."""
    return hashlib.sha256(struct.pack(">IIQ", deflate.crc32(block), deflate.adler32(block), len(block))).hexdigest()


def _member(block: bytes | bytearray, level: int, members: Members | None = None) -> bytes:
    if members is None:
        return bytes(deflate.gzip_compress(block, level))
    digest = block_key(block)
    kept = members.get(block, digest)
    if kept is not None:
        return kept
    member = bytes(deflate.gzip_compress(block, level))
    members.put(digest, member)
    return member


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
        self.pending: deque[Future[bytes]] = deque()
        self.buf = bytearray()
        self.members = 0

    def _submit(self, block: bytes | bytearray) -> None:
        self.members += 1
        self.pending.append(self.pool.submit(_member, block, self.level, self.kept))
        while len(self.pending) > self.threads * 2:
            self.emit(self.pending.popleft().result())

    def write(self, data: bytes | bytearray) -> int:
        """Take `data` on; a whole block (as the layer's sink hands them, never to change them again) is kept as
        given, not copied."""
        if not self.buf and len(data) == BLOCK:
            self._submit(data)
            return len(data)
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
                self.emit(self.pending.popleft().result())
        finally:
            self.pool.shutdown()
