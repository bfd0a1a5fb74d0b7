"""Writing archive entries (tar members, or their like from another format) below a root directory, confined to
it: every path resolved inside the root as the chroot will see it (`bootstrap.host.tree`), the last component
never followed, no device node ever made on the host (an empty file stands in, the override table records it).
Knows nothing about any package format: each family reads its own archives and hands entries here.
"""

import os
import stat
import tarfile
from pathlib import Path
from typing import IO

from bootstrap.errors import UnpackError
from bootstrap.host.overrides import Device, Overrides, disk_mode, identity
from bootstrap.host.tree import Tree

CHUNK = 1 << 20
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
"""Bytes copied at a time from a stream into a file."""


class RootWriter:
    """Writes tar entries below `root`, confined to it."""

    def __init__(self, root: Path, overrides: Overrides | None = None) -> None:
        self.root = str(root)
        self.overrides = overrides
        self.tree = Tree(root, overrides)
        self.resolve_dir = self.tree.resolve_dir
        self._forget = self.tree.forget
        self._dirs: set[str] = set()
        """Real paths seen to be directories: the writer never replaces or removes a directory."""

    def _rel(self, real: str) -> str:
        return real[len(self.root) + 1 :]

    def _record(self, target: str, info: tarfile.TarInfo, device: Device | None = None) -> bool:
        """With an override table, record the entry's owner and mode (and device) and give it the mode it
        keeps on disk; return whether it was recorded (else the caller sets them for real)."""
        if self.overrides is None or (device is None and not self.overrides.owners):
            return False
        mode = 0o777 if info.issym() else info.mode  # what any symlink has
        self.overrides.set(self._rel(target), info.uid, info.gid, mode, device)
        if not info.issym():
            os.chmod(target, disk_mode(info.mode, info.isdir()))
        return True

    def _real(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def _target(self, rel: str) -> str:
        parent, _, name = rel.rpartition("/")
        base = self.resolve_dir(parent) if parent else ""
        real = self._real(base)
        if real not in self._dirs:
            if not _is_dir(real):  # the resolved directory itself, never a link's target
                raise UnpackError(f"cannot create /{rel}: /{parent} is not a directory", "the package set conflicts")
            self._dirs.add(real)
        return self._real(f"{base}/{name}" if base else name)

    @staticmethod
    def _clear(path: str, rel: str) -> None:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            raise UnpackError(f"cannot replace directory /{rel} with a non-directory", "the package set conflicts")
        os.unlink(path)

    def write(self, info: tarfile.TarInfo, rel: str, data: bytes | IO[bytes] = b"", dest_rel: str | None = None) -> str:
        """Create one entry (not a hard link) at `rel`, or at `dest_rel` for a conffile's .dpkg-new; return the
        real path written. A regular file's `data` may be a stream, copied a block at a time."""
        target = self._target(dest_rel or rel)
        if info.isdir():
            kind = _kind(target)
            if kind == stat.S_IFDIR or (kind == stat.S_IFLNK and self.tree.is_dir(dest_rel or rel)):
                return target  # a directory, or a link to one in the tree (as /lib on a merged /usr): kept
            self._clear(target, rel)
            self._replaced(target)
            os.mkdir(target, 0o700)
            if not self._record(target, info):
                os.chown(target, info.uid, info.gid)
                os.chmod(target, stat.S_IMODE(info.mode))
            return target
        self._forget(rel)
        self._replaced(target)  # what the entry there had does not carry over to this one
        if info.isreg():
            try:  # a new file, mostly: what is there is cleared only when something is
                fd = os.open(target, _NEW_FILE, 0o600)
            except FileExistsError:
                self._clear(target, rel)
                fd = os.open(target, _NEW_FILE, 0o600)
            try:
                _copy(fd, data)
                if not self._record(target, info):
                    os.fchown(fd, info.uid, info.gid)
                    os.fchmod(fd, stat.S_IMODE(info.mode))
            finally:
                os.close(fd)
            os.utime(target, (info.mtime, info.mtime), follow_symlinks=False)
        elif info.issym():
            self._clear(target, rel)
            os.symlink(info.linkname, target)
            if not self._record(target, info):
                os.chown(target, info.uid, info.gid, follow_symlinks=False)
            os.utime(target, (info.mtime, info.mtime), follow_symlinks=False)
        elif info.ischr() or info.isblk():
            self._clear(target, rel)
            if self.overrides is None:
                raise UnpackError(
                    f"/{rel}: a device node, and this unpack has no table to record it in",
                    "device nodes are never made on the host: pass an override table",
                )
            # an empty file stands in for the device the layer says
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
            self._record(target, info, Device("chr" if info.ischr() else "blk", info.devmajor, info.devminor))
        elif info.isfifo():
            self._clear(target, rel)
            os.mkfifo(target, stat.S_IMODE(info.mode))
            if not self._record(target, info):
                os.chown(target, info.uid, info.gid)
                os.chmod(target, stat.S_IMODE(info.mode))
        else:
            raise UnpackError(f"/{rel}: unsupported tar entry type {info.type!r}", "the package is malformed")
        return target

    def _replaced(self, target: str) -> None:
        if self.overrides is not None:
            self.overrides.clear_xattrs(self._rel(target))

    def hardlink(self, rel: str, source: str, dest_rel: str | None = None) -> str:
        """A hard link at `rel` (or `dest_rel`) to `source`, a regular file this package wrote (a real path)."""
        target = self._target(dest_rel or rel)
        if not stat.S_ISREG(os.lstat(source).st_mode):
            raise UnpackError(f"hard link /{rel}: its target is no longer a regular file", "the package is malformed")
        self._forget(rel)
        self._clear(target, rel)
        os.link(source, target, follow_symlinks=False)
        if self.overrides is not None:
            self.overrides.copy(self._rel(source), self._rel(target))
        return target

    def set_xattrs(self, real: str, values: dict[str, bytes]) -> None:
        """The extended attributes of an entry written (a real path): recorded for the layer in the override
        table (an ordinary user cannot set `security.*`, root of a user namespace sets its own form of file
        capabilities), or, with no table, set on disk."""
        if self.overrides is not None:
            self.overrides.set_xattrs(self._rel(real), identity(os.lstat(real)), values)
            return
        for name, value in values.items():
            os.setxattr(real, name, value, follow_symlinks=False)


def _kind(path: str) -> int | None:
    """The type bits of what is at `path` (never followed), None when nothing is."""
    try:
        return stat.S_IFMT(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _is_dir(path: str) -> bool:
    return _kind(path) == stat.S_IFDIR


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy(fd: int, data: bytes | IO[bytes]) -> None:
    """Write all of `data` to `fd`; a stream a block at a time, so no file is ever held in memory whole."""
    if isinstance(data, bytes):
        _write_all(fd, data)
        return
    while block := data.read(CHUNK):
        _write_all(fd, block)


def member_path(name: str) -> str | None:
    """The root-relative path of a tar member name, or None when it would leave the root."""
    if "\0" in name or name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)
