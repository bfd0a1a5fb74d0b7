"""The content-addressed cache: files named by their sha256, written by atomic rename, shared safely."""

import fcntl
import hashlib
import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bootstrap.errors import BootstrapError, ChecksumError

_temp_serial = itertools.count()
"""Unique within the process (next() on a count is atomic), so threads never share a temporary path."""


def default_dir() -> Path:
    """`$XDG_CACHE_HOME/bootstrap`, or `~/.cache/bootstrap`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "bootstrap"


def sha256_file(path: Path) -> str:
    """The sha256 of a file, read in large blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Cache:
    """A directory of blobs by sha256 plus named areas for derived data (parsed indexes, HTTP metadata)."""

    root: Path

    def ensure(self) -> "Cache":
        try:
            (self.root / "sha256").mkdir(parents=True, exist_ok=True)
            (self.root / "tmp").mkdir(exist_ok=True)
        except OSError as exc:
            raise BootstrapError(
                f"cannot use cache directory {self.root}: {exc.strerror}",
                "pass a writable --cache-dir or set XDG_CACHE_HOME",
            ) from exc
        return self

    def blob(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256

    def has(self, sha256: str, size: int | None = None) -> bool:
        """True when the blob is present (and of the expected size, when given)."""
        try:
            st = self.blob(sha256).stat()
        except FileNotFoundError:
            return False
        return size is None or st.st_size == size

    def temp(self, name: str) -> Path:
        """A private temporary path inside the cache (same file system, so the final rename is atomic)."""
        return self.root / "tmp" / f"{name}.{os.getpid()}.{next(_temp_serial)}"

    def adopt(self, tmp: Path, sha256: str, what: str) -> Path:
        """Check `tmp` against `sha256` and move it into the store; a mismatch deletes it and raises."""
        actual = sha256_file(tmp)
        if actual != sha256:
            tmp.unlink(missing_ok=True)
            raise ChecksumError(
                f"checksum mismatch for {what}: expected sha256 {sha256}, got {actual}",
                "the mirror may be syncing or corrupt: retry later or use another --mirror",
            )
        dest = self.blob(sha256)
        os.replace(tmp, dest)
        return dest

    def area(self, name: str) -> Path:
        """A subdirectory for derived data, created on demand."""
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """An exclusive advisory lock, so two builds sharing the cache do not fetch the same thing twice."""
        lockdir = self.area("locks")
        with open(lockdir / name, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a file whole or not at all."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
