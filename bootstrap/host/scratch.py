"""Scratch directories that a later build can tell are abandoned.

Beside each one lies `<name>.lock`, made and locked (flock) before the directory itself, and held for as
long as its owner runs. A process killed with SIGKILL cannot clean up, but the kernel drops its lock: the
next build that makes a scratch directory in the same place removes every one of this user's whose lock it
can take (holding it meanwhile; never one with something mounted in it), and every lock of this user that
nobody holds and whose directory is gone (its owner was killed after removing the directory, before removing
the lock). Only names of the form `<prefix><8 characters>` count, and only a lock that is a regular file of
this user: another user's file, a FIFO, a directory named alike are left alone.
"""

import fcntl
import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bootstrap.host.sandbox import mounts_under
from bootstrap.host.tree import remove_tree
from bootstrap.log import log

TOKEN = 8
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _lock_of(directory: Path) -> Path:
    return directory.with_name(directory.name + ".lock")


@contextmanager
def _taken(lock: Path) -> Iterator[int | None]:
    """The lock open and held (its descriptor) when it is this user's regular file and nobody holds it, else
    None; released at the end."""
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    try:
        st = os.fstat(fd)
        ours = stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid()
        if ours:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                ours = False
        yield fd if ours else None
    finally:
        os.close(fd)


def abandoned(directory: Path) -> bool:
    """Whether the directory's lock is this user's regular file and nobody holds it."""
    with _taken(_lock_of(directory)) as fd:
        return fd is not None


def _same_file(path: Path, fd: int) -> bool:
    """Whether `path` is (still) the file open as `fd`."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def ours(path: Path) -> bool:
    """Whether `path` is a directory of this user (not a link to one)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid()


def _drop_orphan(lock: Path, directory: Path) -> bool:
    """Remove a lock of this user that nobody holds and whose directory is not there (or is not this user's: a
    name another user took). It is removed while held, so that whoever made it a moment ago and is about to
    lock it finds it gone and takes another name."""
    with _taken(lock) as fd:
        if fd is None or ours(directory) or not _same_file(lock, fd):
            return False
        try:
            lock.unlink()
        except OSError:
            return False
        return True


def _remove_abandoned(path: Path) -> bool:
    """Remove a directory of this user whose lock nobody holds, and then its lock, holding the lock all along:
    another build sweeping the same place at the same time skips it, rather than removing it alongside (the
    first to finish would take the lock away from what the other had left)."""
    lock = _lock_of(path)
    with _taken(lock) as fd:
        if fd is None or not ours(path) or not _same_file(lock, fd):
            return False
        mounted = mounts_under(path, include_self=True)
        if mounted:  # the removal would go on into what is mounted there
            log.debug("not removing %s, left by a build that did not finish: %s is mounted", path, mounted[-1])
            return False
        log.debug("removing %s, left by a build that did not finish", path)
        try:
            remove_tree(path)
            lock.unlink()
        except OSError as exc:
            log.debug("cannot remove %s: %s", path, exc.strerror)
            return False
        return True


def sweep(parent: Path, prefix: str) -> list[Path]:
    """Remove the abandoned scratch directories `parent/prefix<token>` of this user, and their locks left
    without a directory; returns what was removed."""
    shape = re.compile(re.escape(prefix) + f"[{_ALPHABET}]{{{TOKEN}}}")
    try:
        names = [p.name for p in parent.iterdir()]
    except OSError:
        return []
    removed = []
    for name in sorted(names):
        if name.endswith(".lock") and shape.fullmatch(name.removesuffix(".lock")):
            lock = parent / name
            if _drop_orphan(lock, lock.with_name(name.removesuffix(".lock"))):
                log.debug("removed %s, left by a build that did not finish", lock)
                removed.append(lock)
    removed += [parent / n for n in sorted(names) if shape.fullmatch(n) and _remove_abandoned(parent / n)]
    return removed


def _new_name(parent: Path, prefix: str, make: bool) -> tuple[Path, int]:
    """A free name `parent/prefix<token>` with its lock made and held (the descriptor returned); with `make`,
    the directory too. Nobody else takes a name whose lock file exists."""
    while True:
        path = parent / (prefix + "".join(secrets.choice(_ALPHABET) for _ in range(TOKEN)))
        lock = _lock_of(path)
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        except FileExistsError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if not _same_file(lock, fd):  # a sweep took it for a killed build's between its making and locking
                os.close(fd)
                continue
            if make:
                os.mkdir(path, 0o700)
            elif os.path.lexists(path):
                raise FileExistsError(path)
        except FileExistsError:
            lock.unlink(missing_ok=True)
            os.close(fd)
            continue
        except BaseException:
            lock.unlink(missing_ok=True)
            os.close(fd)
            raise
        return path, fd


def _unlock(path: Path, fd: int) -> None:
    """Let go of a name: its lock goes too once the directory is gone; while the directory is still there (its
    removal failed), the lock stays, released, so that the next sweep removes both."""
    if not os.path.lexists(path):
        _lock_of(path).unlink(missing_ok=True)
    os.close(fd)


@contextmanager
def claimed(parent: Path, prefix: str) -> Iterator[Path]:
    """A new directory `parent/prefix<token>`, locked while the context is open; stale ones of earlier builds
    are swept first. The caller removes (or renames) the directory itself; the lock goes at the end (or stays for
    the next sweep, when the directory could not be removed)."""
    sweep(parent, prefix)
    path, fd = _new_name(parent, prefix, make=True)
    try:
        yield path
    finally:
        _unlock(path, fd)


def retire(path: Path, prefix: str) -> None:
    """Remove a claimed directory that threads of this process may still be making files in: it is first moved
    to a fresh locked name, out of reach of every path into the old one, then removed (the next build sweeps
    it if this process dies on the way)."""
    try:
        gone, fd = _new_name(path.parent, prefix, make=False)
    except FileNotFoundError:  # removed with its parent already
        return
    try:
        try:
            os.rename(path, gone)
        except FileNotFoundError:
            return
        for _ in range(10):  # a file whose creation was under way as the directory moved
            try:
                remove_tree(gone)
                return
            except OSError as exc:
                log.debug("removing %s again: %s", gone, exc.strerror)
    finally:
        _unlock(gone, fd)
