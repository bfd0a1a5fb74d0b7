"""Deterministic multi-core gzip: the stream is cut into fixed 4 MiB blocks, each compressed by libdeflate
as its own gzip member, on every core.

A file of several gzip members is one valid gzip stream (RFC 1952, section 2.2; Go's compress/gzip, which
Docker, containerd, skopeo and umoci use, reads them as one). The bytes depend only on the input, the level
and the pinned libdeflate, never on the number of threads: block boundaries are fixed.

Because they depend on nothing else, the members of earlier builds can be kept (`Members`): a block that a
previous build compressed, as a rebuild of unchanged packages gives again, is taken from there once it is shown
to inflate to exactly that block. Reading one marks it used; the cache's size cap (`bootstrap.prune`, after
every build) removes the least recently used.
"""

import hashlib
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import deflate

from bootstrap.cache import read_derived, write_derived
from bootstrap.log import log

BLOCK = 4 << 20
LEVEL = 6
"""libdeflate's level 6 compresses better than zlib's level 9 at several times its speed."""


class Members:
    """Gzip members of earlier builds, each bound to the sha256 of the block it holds (a derived file)."""

    def __init__(self, directory: Path, level: int) -> None:
        self.directory = directory
        self.suffix = f".gz{level}-libdeflate{metadata.version('deflate')}"

    def _path(self, digest: str) -> Path:
        return self.directory / (digest + self.suffix)

    def get(self, block: bytes, digest: str) -> bytes | None:
        """The member kept for `block` (sha256 `digest`), or None. It is used only when it inflates to `block`
        itself: the cache is not trusted for content."""
        path = self._path(digest)
        sections = read_derived(path, digest)
        if sections is None or len(sections) != 1:
            return None
        try:
            good = deflate.gzip_decompress(sections[0]) == block
        except deflate.DeflateError:
            good = False
        if not good:
            log.debug("discarding %s: it does not inflate to the block it is bound to", path)
            path.unlink(missing_ok=True)
            return None
        return sections[0]

    def put(self, digest: str, member: bytes) -> None:
        write_derived(self._path(digest), digest, [member])


def _member(block: bytes, level: int, members: Members | None = None) -> bytes:
    if members is None:
        return bytes(deflate.gzip_compress(block, level))
    digest = hashlib.sha256(block).hexdigest()
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
        emit: Callable[[bytes], None],
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

    def _submit(self, block: bytes) -> None:
        self.members += 1
        self.pending.append(self.pool.submit(_member, block, self.level, self.kept))
        while len(self.pending) > self.threads * 2:
            self.emit(self.pending.popleft().result())

    def write(self, data: bytes) -> int:
        self.buf += data
        while len(self.buf) >= BLOCK:
            self._submit(bytes(self.buf[:BLOCK]))
            del self.buf[:BLOCK]
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
