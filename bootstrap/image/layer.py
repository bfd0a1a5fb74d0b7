"""One deterministic layer from a directory tree: sorted entries, numeric owners, clamped times, xattrs.

Knows nothing about any distribution: it takes a tree and an epoch and gives a blob with its digests.
"""

import dataclasses
import enum
import hashlib
import os
import stat
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import zstandard

from bootstrap.errors import BootstrapError
from bootstrap.host.overrides import Overrides, identity
from bootstrap.host.parallel import InOrder
from bootstrap.image import tarheader
from bootstrap.image.compress import LEVEL as GZIP_LEVEL
from bootstrap.image.compress import Members, ParallelGzip
from bootstrap.log import log

ZSTD_LEVEL = 9
COPY_BUFFER = 1 << 20
PIECE = 4 << 20
"""The tar stream is hashed and compressed this much at a time (gzip's block: `bootstrap.image.compress`)."""
PIECES = 12
"""The most pieces the stream uses: handed on to the hash, the compressor and the writer, each a bounded queue."""
"""How much of a file the tar stream takes at a time, and hands on to the hash and the compressor (the stream's
bytes do not depend on it)."""

EMPTY_DIRS = ("dev", "proc", "sys")
"""Kept as empty directories: the container runtime mounts them."""


class Compression(enum.StrEnum):
    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"

    @property
    def file_suffix(self) -> str:
        return {"gzip": ".tar.gz", "zstd": ".tar.zst", "none": ".tar"}[self.value]

    @property
    def media_suffix(self) -> str:
        return {"gzip": "+gzip", "zstd": "+zstd", "none": ""}[self.value]


@dataclass(frozen=True)
class Layer:
    path: Path
    digest: str
    """sha256 of the blob as stored (compressed)."""
    diff_id: str
    """sha256 of the uncompressed tar."""
    size: int
    tar_size: int
    compression: Compression

    @property
    def media_type(self) -> str:
        return "application/vnd.oci.image.layer.v1.tar" + self.compression.media_suffix


class LayerMismatch(BootstrapError):
    """A layer that took gzip members on the word of the layer kept under its key, and is not that layer."""


class _HashingSink:
    """A file-like sink: hashes the tar stream, compresses it, hashes and writes the result. The stream is taken
    on in pieces of PIECE bytes, hashed in a thread of its own (in order) while the caller goes on."""

    def __init__(
        self,
        out: BinaryIO,
        compression: Compression,
        level: int,
        members: Members | None = None,
        hashed: bool = True,
        also: "hashlib._Hash | None" = None,
    ) -> None:
        self.out = out
        self.tar_hash = hashlib.sha256()
        self.hashed = hashed
        """Whether the tar stream is hashed (else its blocks' keys alone are computed: `Members.proves`)."""
        self.also = also
        """A hash that takes the blob too, as it is written (an image tar's: `bootstrap.image.oci.Prehash`)."""
        self.blob_hash = hashlib.sha256()
        self.tar_size = 0
        self.size = 0
        self.compression = compression
        self._piece = bytearray(PIECE)
        self._fill = 0
        """Bytes of the current piece filled: a piece is handed on whole (never copied) and a new one begun."""
        self._hasher = InOrder(4)
        self._writer = InOrder(8)
        self._spent: deque[tuple[bytearray, list[Future[Any]]]] = deque()
        """Pieces handed on, with the work that has them (`_fresh`)."""
        if compression is Compression.GZIP:
            self._gz = ParallelGzip(self._emit, level or GZIP_LEVEL, members=members)
        elif compression is Compression.ZSTD:
            # Any thread count >= 1 gives the same bytes (0 would not), so use every core.
            self._zst = zstandard.ZstdCompressor(level=level or ZSTD_LEVEL, threads=os.cpu_count() or 1).compressobj()

    def _emit(self, data: bytes | bytearray) -> "Future[Any] | None":
        """Hand compressed bytes on to the writer thread (in order, a bounded queue), which hashes and writes them
        while the stream goes on; that work, or None for no bytes."""
        return self._writer.submit(self._write_out, data) if data else None

    def _write_out(self, data: bytes | bytearray) -> None:
        self.blob_hash.update(data)
        if self.also is not None:
            self.also.update(data)
        self.size += len(data)
        self.out.write(data)

    def write(self, data: bytes) -> int:
        with memoryview(data) as view:
            while view:
                n = min(len(view), PIECE - self._fill)
                self._piece[self._fill : self._fill + n] = view[:n]
                self._filled(n)
                view = view[n:]
        return len(data)

    def take(self, fd: int, size: int) -> int:
        """Read up to `size` bytes of the open file `fd` straight into the stream (no copy between the read and
        the hash and compressor); how many were read (fewer only at the file's end)."""
        done = 0
        while done < size:
            with memoryview(self._piece) as view:
                n = os.readv(fd, [view[self._fill : self._fill + min(size - done, PIECE - self._fill)]])
            if not n:
                break
            self._filled(n)
            done += n
        return done

    def _filled(self, n: int) -> None:
        self._fill += n
        self.tar_size += n
        if self._fill == PIECE:
            self._flush()

    def _flush(self) -> None:
        piece = self._piece if self._fill == PIECE else self._piece[: self._fill]
        users: list[Future[Any]] = [self._hasher.submit(self.tar_hash.update, piece)] if self.hashed else []
        if self.compression is Compression.GZIP:
            self._gz.write(piece)
            if self._gz.held is not None:
                users.append(self._gz.held)
        elif self.compression is Compression.ZSTD:
            self._emit(self._zst.compress(piece))
        else:
            written = self._emit(piece)
            if written is not None:
                users.append(written)
        if len(piece) == PIECE:  # the last one, cut short, is never filled again
            self._spent.append((piece, users))
        self._piece, self._fill = self._fresh(), 0

    def _fresh(self) -> bytearray:
        """A piece to fill: the oldest one handed on, once everything that had it is done with it (memory the
        process has touched already: a new one costs the kernel a page fault and a cleared page every 4 KiB),
        waited for when PIECES are handed on already, else a new one."""
        if len(self._spent) >= PIECES:
            piece, users = self._spent.popleft()
            for user in users:
                user.result()
            return piece
        if self._spent and all(f.done() for f in self._spent[0][1]):
            return self._spent.popleft()[0]
        return bytearray(PIECE)

    def close(self) -> None:
        try:
            if self._fill:
                self._flush()
            self._hasher.settle()
            if self.compression is Compression.GZIP:
                self._gz.close()
            elif self.compression is Compression.ZSTD:
                self._emit(self._zst.flush())
            self._writer.settle()
        finally:
            self._hasher.close()
            self._writer.close()

    def abandon(self) -> None:
        """Stop hashing and writing (the stream failed: nothing it wrote is used)."""
        self._hasher.close(cancel=True)
        self._writer.close(cancel=True)


def _xattrs(path: str) -> dict[str, str]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out = {}
    for name in sorted(names):
        if name.startswith("security.selinux"):
            continue
        value = os.getxattr(path, name, follow_symlinks=False)
        out[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    return out


def _walk(root: str) -> list[str]:
    """Every path below root, relative, in byte order of the full path (parents before children); without
    recursion, so no tree a script leaves is too deep, and a directory that cannot be read is an error, not a
    hole in the image."""
    out: list[str] = []
    pending = [""]
    while pending:
        rel = pending.pop()
        if rel.rstrip("/") in EMPTY_DIRS:
            continue
        try:
            with os.scandir(os.path.join(root, rel)) as entries:
                for entry in entries:
                    out.append(rel + entry.name)
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(rel + entry.name + "/")
        except OSError as exc:
            raise BootstrapError(
                f"pack: the tree's directory /{rel} cannot be read ({exc.strerror})",
                "a script left it deeper or stranger than an image can hold: remove it in the recipe",
            ) from None
    out.sort(key=lambda p: p.encode("utf-8", "surrogateescape"))
    return out


SPARSE_LIMIT = 1 << 30
"""The most bytes of holes a file of the tree may have: a script can make a file of any length that takes
nothing on disk (`truncate -s 1E`), which the layer would hold as zeros, written and inflated on every pull."""


def _sparse(rel: str, st: os.stat_result) -> None:
    holes = st.st_size - st.st_blocks * 512
    if holes > SPARSE_LIMIT:
        raise BootstrapError(
            f"pack: /{rel} is a sparse file of {st.st_size} bytes, {holes >> 20} MiB of them holes never written",
            "a script made it: no image holds one; remove it in the recipe (a customize hook, rpm.remove)",
        )


def write_tar(root: Path, epoch: int, sink: BinaryIO, overrides: Overrides | None = None) -> None:
    """Write the tree as a reproducible tar stream to `sink` (the bytes tarfile's PAX format gives:
    `bootstrap.image.tarheader`); with `overrides`, each entry has the owner, mode and type recorded there rather
    than those it has on disk."""
    links: dict[tuple[int, int], tuple[str, dict[str, str]]] = {}
    recorded_files = overrides.xattrs_by_inode() if overrides is not None else {}
    offset = 0
    for rel in _walk(str(root)):
        full = os.path.join(root, rel)
        st = disk = os.lstat(full)
        if overrides is not None:
            st = overrides.view(rel, st)
        mode, size, linkname, device = st.st_mode, 0, "", (0, 0)
        xattrs = _xattrs(full)
        # recorded for a file, whatever its names now (a script may have renamed or linked it)
        found = recorded_files.pop(identity(disk), None) if stat.S_ISREG(mode) and recorded_files else None
        recorded = found[1] if found is not None else {}
        if recorded:
            merged = {
                **xattrs,
                **{f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in recorded.items()},
            }
            xattrs = dict(sorted(merged.items()))
        if stat.S_ISREG(mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink > 1 and key in links:
                kind = tarheader.LNKTYPE
                linkname, xattrs = links[key]
            else:
                if st.st_nlink > 1:
                    links[key] = (rel, xattrs)
                kind, size = tarheader.REGTYPE, st.st_size
                _sparse(rel, disk)
        elif stat.S_ISDIR(mode):
            kind = tarheader.DIRTYPE
        elif stat.S_ISLNK(mode):
            kind, linkname = tarheader.SYMTYPE, os.readlink(full)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            kind = tarheader.CHRTYPE if stat.S_ISCHR(mode) else tarheader.BLKTYPE
            device = (os.major(st.st_rdev), os.minor(st.st_rdev))
        elif stat.S_ISFIFO(mode):
            kind = tarheader.FIFOTYPE
        else:
            continue
        mtime = min(int(st.st_mtime), epoch)
        perms, uid, gid = stat.S_IMODE(mode), st.st_uid, st.st_gid
        head = tarheader.header(rel, kind, perms, uid, gid, size, mtime, linkname, device, xattrs)
        sink.write(head)
        offset += len(head)
        if kind == tarheader.REGTYPE:
            _copy(full, sink, size, rel)
            tail = tarheader.padding(size)
            sink.write(tail)
            offset += size + len(tail)
    sink.write(tarheader.end(offset))
    for path, values in recorded_files.values():
        log.warning("/%s: removed or rewritten by a script, so its %s is not in the image", path, ", ".join(values))


def _copy(path: str, sink: BinaryIO, size: int, rel: str) -> None:
    """Exactly `size` bytes of the file at `path`, never through a symlink (one swapped in since it was seen is
    refused, as is a file that is shorter now); into the layer's own sink without a copy."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if isinstance(sink, _HashingSink):
            if sink.take(fd, size) != size:
                raise OSError(f"{rel} became shorter while it was packed")
            return
        left = size
        while left:
            chunk = os.read(fd, min(COPY_BUFFER, left))
            if not chunk:
                raise OSError(f"{rel} became shorter while it was packed")
            sink.write(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)


def pack(
    root: Path,
    epoch: int,
    dest: Path,
    compression: Compression = Compression.GZIP,
    level: int = 0,
    overrides: Overrides | None = None,
    members: Members | None = None,
    again: bool = True,
    also: "hashlib._Hash | None" = None,
) -> Layer:
    """Pack `root` into the layer blob `dest`, computing the blob digest and the diff_id in the same pass
    (`members`: gzip members of earlier builds to take rather than compress again; a layer that took some on the
    word of the kept layer and is not that layer after all is packed again, every member proven, or, without
    `again`, is an error: the caller builds the tree again; the blocks' keys are left in `members.blocks`, for the
    caller to `remember` the layer by). Without `again`, the tar is not hashed: it must be the kept layer's, block
    for block, and then has its diff_id (`Members.proves`). `also` (only then: one pass, or an error): a hash
    that takes the blob as it is written."""
    if also is not None and (members is None or again):
        raise ValueError("pack: `also` hashes a blob packed in one pass only (with members, without again)")
    if members is not None and not again:
        layer = _pack(root, epoch, dest, compression, level, overrides, members, hashed=False, also=also)
        diff_id = members.proves(layer.digest)
        if diff_id is None:
            raise LayerMismatch(f"{dest.name}: not the layer kept under its key", "the tree is built again")
        return dataclasses.replace(layer, diff_id=diff_id)
    layer = _pack(root, epoch, dest, compression, level, overrides, members)
    if members is not None and not members.confirms(layer.diff_id, layer.digest):
        if not again:
            raise LayerMismatch(f"{dest.name}: not the layer kept under its key", "the tree is built again")
        log.debug("%s: not the layer kept under its key: packed again, every kept member proven", dest.name)
        members.forget()
        layer = _pack(root, epoch, dest, compression, level, overrides, members)
    return layer


def _pack(
    root: Path,
    epoch: int,
    dest: Path,
    compression: Compression,
    level: int,
    overrides: Overrides | None,
    members: Members | None,
    hashed: bool = True,
    also: "hashlib._Hash | None" = None,
) -> Layer:
    with open(dest, "wb") as out:
        sink = _HashingSink(out, compression, level, members, hashed, also)
        try:
            write_tar(root, epoch, sink, overrides)  # type: ignore[arg-type]
        except BaseException:
            sink.abandon()
            raise
        sink.close()
    return Layer(
        path=dest,
        digest="sha256:" + sink.blob_hash.hexdigest(),
        diff_id="sha256:" + sink.tar_hash.hexdigest() if hashed else "",
        size=sink.size,
        tar_size=sink.tar_size,
        compression=compression,
    )
