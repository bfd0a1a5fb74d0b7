"""Scratch directories that a later build can tell are abandoned.

Beside each one lies `<name>.lock`, locked (flock) for as long as its owner runs. A process killed with SIGKILL
cannot clean up, but the kernel drops its lock: the next build that makes a scratch directory in the same
place removes every one whose lock it can take.
"""

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bootstrap.log import log


def _lock_of(directory: Path) -> Path:
    return directory.with_name(directory.name + ".lock")


def _abandoned(directory: Path) -> bool:
    try:
        fd = os.open(_lock_of(directory), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def sweep(parent: Path, prefix: str) -> list[Path]:
    """Remove the abandoned scratch directories `parent/prefix*` of this user; returns what was removed."""
    removed = []
    try:
        candidates = sorted(p for p in parent.glob(prefix + "*") if not p.name.endswith(".lock"))
    except OSError:
        return []
    for path in candidates:
        try:
            st = path.lstat()
        except OSError:
            continue
        if not path.is_dir() or path.is_symlink() or st.st_uid != os.geteuid() or not _abandoned(path):
            continue
        log.debug("removing %s, left by a build that did not finish", path)
        shutil.rmtree(path, ignore_errors=True)
        _lock_of(path).unlink(missing_ok=True)
        removed.append(path)
    return removed


@contextmanager
def claimed(parent: Path, prefix: str) -> Iterator[Path]:
    """A new directory `parent/prefix<random>`, locked while the context is open; stale ones of earlier builds
    are swept first. The caller removes (or renames) the directory itself; the lock goes at the end."""
    sweep(parent, prefix)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    lock = _lock_of(path)
    # Locked before it is named, so a build sweeping at this moment never finds it unlocked.
    unnamed = lock.with_name(f".{lock.name}.{os.getpid()}")
    fd = os.open(unnamed, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(unnamed, lock)
        yield path
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
