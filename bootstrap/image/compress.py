"""Deterministic multi-core gzip: fixed-size blocks, each primed with the 32 KiB before it.

The output depends only on the input and the level, never on the number of threads: block boundaries
are fixed, and every block but the last ends with a sync flush, so the raw deflate pieces concatenate
into one valid stream (the same construction pigz uses).
"""

import os
import struct
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from zlib_ng import zlib_ng as zlib

BLOCK = 1 << 20
WINDOW = 1 << 15


def _deflate(block: bytes, primer: bytes, level: int, last: bool) -> bytes:
    c = (
        zlib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, primer)
        if primer
        else zlib.compressobj(level, zlib.DEFLATED, -15, 9)
    )
    return c.compress(block) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)


class ParallelGzip:
    """A write-only gzip stream whose deflate work runs on a thread pool."""

    def __init__(self, emit: Callable[[bytes], None], level: int = 9, threads: int | None = None) -> None:
        self.emit = emit
        self.level = level
        self.threads = threads or min(os.cpu_count() or 1, 8)
        self.pool = ThreadPoolExecutor(max_workers=self.threads)
        self.pending: deque[Future[bytes]] = deque()
        self.buf = bytearray()
        self.primer = b""
        self.crc = 0
        self.size = 0
        xfl = 2 if level == 9 else 4 if level == 1 else 0
        emit(b"\x1f\x8b\x08\x00\x00\x00\x00\x00" + bytes([xfl, 255]))

    def _submit(self, block: bytes, last: bool) -> None:
        self.crc = zlib.crc32(block, self.crc)
        self.size += len(block)
        self.pending.append(self.pool.submit(_deflate, block, self.primer, self.level, last))
        self.primer = block[-WINDOW:]
        while len(self.pending) > self.threads * 2:
            self.emit(self.pending.popleft().result())

    def write(self, data: bytes) -> int:
        self.buf += data
        while len(self.buf) >= BLOCK:
            self._submit(bytes(self.buf[:BLOCK]), False)
            del self.buf[:BLOCK]
        return len(data)

    def close(self) -> None:
        self._submit(bytes(self.buf), True)
        self.buf.clear()
        try:
            while self.pending:
                self.emit(self.pending.popleft().result())
        finally:
            self.pool.shutdown()
        self.emit(struct.pack("<II", self.crc, self.size & 0xFFFFFFFF))
