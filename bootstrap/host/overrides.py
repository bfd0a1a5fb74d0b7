"""What the layer says about an entry when the file on disk cannot say it: owner, mode, device node, and
the extended attributes a package gives its files (file capabilities), which an ordinary user cannot set and
root of a user namespace sets only in its own form.

A build that cannot give files other owners or make device nodes (an ordinary user without a user
namespace; inside a user namespace, mknod is refused) writes each entry as its own and records here what a
root build would have made. The layer writer, and every reader of the tree, then see the recorded owner,
mode and device instead of what is on disk. Entries nobody recorded belong to `default_owner` when one is
set (a build where nothing may keep the builder's ids), else keep the owner they have on disk.

A table with `owners` false holds device nodes only: for a builder that can give files their owners (root
of a user namespace) but cannot make devices.

Knows nothing about any distribution: paths are relative to the tree's root, as the layer names them, and
name the entry itself (symlinks on the way already resolved by the writer).
"""

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

DeviceKind = Literal["chr", "blk"]

_DEVICE_TYPE = {"chr": stat.S_IFCHR, "blk": stat.S_IFBLK}


@dataclass(frozen=True)
class Device:
    kind: DeviceKind
    major: int
    minor: int

    @property
    def file_type(self) -> int:
        return _DEVICE_TYPE[self.kind]


@dataclass(frozen=True)
class Override:
    uid: int
    gid: int
    mode: int
    """Permission bits, setuid, setgid and sticky included (no file type)."""
    device: Device | None = None
    """Set when the entry is a device node, which the disk holds as an empty regular file."""


def disk_mode(mode: int, is_dir: bool) -> int:
    """The mode a recorded entry gets on disk: its permissions without the special bits, and always
    readable and writable by the builder (a directory also searchable), so the build can fill it, pack it
    and remove it whatever the image says."""
    return (mode & 0o777) | (0o700 if is_dir else 0o600)


def _restat(st: os.stat_result, mode: int, uid: int, gid: int, rdev: int | None) -> os.stat_result:
    fields = list(st[: os.stat_result.n_sequence_fields])
    fields[0], fields[4], fields[5] = mode, uid, gid
    extra = {"st_atime": st.st_atime, "st_mtime": st.st_mtime, "st_ctime": st.st_ctime, "st_rdev": st.st_rdev}
    if rdev is not None:
        extra["st_rdev"] = rdev
        fields[6] = 0
    return os.stat_result(fields, extra)


_T = TypeVar("_T")
Inode = tuple[int, int, int, int]
"""A file as it was when recorded: st_dev, st_ino, st_size, st_mtime_ns (`identity`)."""


def identity(st: os.stat_result) -> Inode:
    """The file an lstat shows, as a record names it: its inode, and its size and mtime, so that a file a script
    rewrote, or a new one given the inode number of one a script removed, is not taken for it."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _override(row: Any) -> Override:
    """An entry of a snapshot's table (`Overrides.snapshot`); TypeError or ValueError when it is none."""
    if not isinstance(row, list) or len(row) not in (3, 6) or not all(isinstance(n, int) for n in row[:3]):
        raise TypeError("not an entry")
    device = None
    if len(row) == 6:
        kind, major, minor = row[3:]
        if kind not in _DEVICE_TYPE or not isinstance(major, int) or not isinstance(minor, int):
            raise TypeError("not a device")
        device = Device(kind, major, minor)
    return Override(row[0], row[1], row[2], device)


def _copy(table: dict[str, _T], source: str, dest: str) -> None:
    found = table.get(source)
    if found is None:
        table.pop(dest, None)
    else:
        table[dest] = found


def _move(table: dict[str, _T], source: str, dest: str) -> None:
    below = source + "/"
    moved = {k: v for k, v in table.items() if k == source or k.startswith(below)}
    for key, value in moved.items():
        del table[key]
        table[dest + key[len(source) :]] = value


def _forget(table: dict[str, _T], path: str) -> None:
    below = path + "/"
    for key in [k for k in table if k == path or k.startswith(below)]:
        del table[key]


class Overrides:
    """Path (relative to the tree's root) -> what the image says about that entry."""

    def __init__(self, default_owner: tuple[int, int] | None = None, owners: bool = True) -> None:
        self.default_owner = default_owner
        self.owners = owners
        """Owners and modes are recorded here (else set on disk, and only device nodes are recorded)."""
        self._table: dict[str, Override] = {}
        self._xattrs: dict[str, tuple[Inode, dict[str, bytes]]] = {}

    def __len__(self) -> int:
        return len(self._table)

    def __contains__(self, path: object) -> bool:
        return path in self._table

    def get(self, path: str) -> Override | None:
        return self._table.get(path)

    def set(self, path: str, uid: int, gid: int, mode: int, device: Device | None = None) -> None:
        self._table[path] = Override(uid, gid, stat.S_IMODE(mode), device)

    def set_xattrs(self, path: str, inode: Inode, values: dict[str, bytes]) -> None:
        """The extended attributes the layer gives the regular file at `path`, `inode` on disk (`identity`): they
        belong to the file, so a script renaming it or linking it elsewhere keeps them; one rewriting it drops
        them, as the kernel drops a rewritten file's capabilities."""
        self._xattrs[path] = (inode, dict(values))

    def clear_xattrs(self, path: str) -> None:
        """The entry at `path` was replaced: what was recorded for the one before does not carry over."""
        self._xattrs.pop(path, None)

    def xattrs(self, path: str) -> dict[str, bytes]:
        found = self._xattrs.get(path)
        return {} if found is None else found[1]

    def xattrs_by_inode(self) -> dict[Inode, tuple[str, dict[str, bytes]]]:
        """Every recorded file's attributes by its inode, with the first path it was recorded at."""
        out: dict[Inode, tuple[str, dict[str, bytes]]] = {}
        for path, (inode, values) in sorted(self._xattrs.items()):
            out.setdefault(inode, (path, values))
        return out

    def snapshot(self) -> bytes:
        """The table and the recorded attributes, by path, for `take_up` to read back over a copy of the tree
        (whose files are other inodes)."""
        table = {
            path: [o.uid, o.gid, o.mode, *([o.device.kind, o.device.major, o.device.minor] if o.device else [])]
            for path, o in self._table.items()
        }
        attrs = {path: {k: v.hex() for k, v in values.items()} for path, (_, values) in self._xattrs.items()}
        return json.dumps({"table": table, "xattrs": attrs}, sort_keys=True).encode()

    def take_up(self, data: bytes, lstat: Callable[[str], os.stat_result | None]) -> bool:
        """Add what `snapshot` gave, each path's attributes bound to the file `lstat` shows there now; False, and
        nothing added, when `data` is not a snapshot or a path with attributes is no regular file."""
        try:
            got = json.loads(data)
            table = {path: _override(row) for path, row in got["table"].items()}
            attrs = {
                path: {str(k): bytes.fromhex(v) for k, v in values.items()} for path, values in got["xattrs"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError):
            return False
        bound = {}
        for path, values in attrs.items():
            st = lstat(path)
            if st is None or not stat.S_ISREG(st.st_mode):
                return False
            bound[path] = (identity(st), values)
        self._table.update(table)
        self._xattrs.update(bound)
        return True

    def copy(self, source: str, dest: str) -> None:
        """`dest` is said to be what `source` is (a hard link to it)."""
        _copy(self._table, source, dest)
        _copy(self._xattrs, source, dest)

    def move(self, source: str, dest: str) -> None:
        """What is recorded at `source` and below it now belongs at `dest` (the entry was renamed)."""
        self.forget(dest)
        _move(self._table, source, dest)
        _move(self._xattrs, source, dest)

    def forget(self, path: str) -> None:
        """Drop what is recorded at `path` and below it (the entry was removed)."""
        _forget(self._table, path)
        _forget(self._xattrs, path)

    def view(self, path: str, st: os.stat_result) -> os.stat_result:
        """`st` (an lstat of the entry at `path`) as the image has it: recorded owner, mode and device type."""
        found = self._table.get(path)
        if found is None:
            if self.default_owner is None:
                return st
            return _restat(st, st.st_mode, *self.default_owner, None)
        if found.device is not None:
            rdev = os.makedev(found.device.major, found.device.minor)
            return _restat(st, found.device.file_type | found.mode, found.uid, found.gid, rdev)
        return _restat(st, stat.S_IFMT(st.st_mode) | found.mode, found.uid, found.gid, None)
