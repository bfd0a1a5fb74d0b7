"""Host-side file operations inside a built tree, never reaching outside it.

The tree is untrusted: packages and maintainer scripts put symlinks anywhere (`etc/apt -> /etc/apt`,
`var/log -> /`). Every path is resolved the way a process chrooted into the tree would see it: a symlink
met on the way is followed with absolute targets taken from the tree's root and `..` stopping at the root,
and the last component is never followed unless asked. Directories are then opened one component at a
time with O_NOFOLLOW, so what is touched is what was resolved.

With an override table (a build that gives no file a foreign owner), owners and modes are recorded there
rather than set on disk, and every stat of the tree reports them: the tree reads as the image will be.
"""

import errno
import fnmatch
import os
import posixpath
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from bootstrap.errors import BootstrapError
from bootstrap.host.overrides import Overrides, disk_mode

MAX_LINKS = 40
EDIT_LIMIT = 64 << 20
"""The largest file a finish step reads whole to change or copy (an append, a tmpfiles `w` or `C`): a sparse file
a script made takes nothing on disk, whatever size it says."""
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class TreeError(BootstrapError):
    """A path inside the tree cannot be used as asked (a loop, a file where a directory should be)."""


def _parts(rel: str) -> list[str]:
    return [p for p in rel.split("/") if p not in ("", ".")]


class Tree:
    """A root directory and the operations the build does on it from the host."""

    def __init__(self, root: Path, overrides: Overrides | None = None) -> None:
        self.root = Path(root)
        self.overrides = overrides
        self._dirs: dict[str, str] = {"": ""}

    @property
    def _recording(self) -> Overrides | None:
        """The table owners and modes go to, when they are recorded rather than set on disk."""
        return self.overrides if self.overrides is not None and self.overrides.owners else None

    def _view(self, resolved: str, st: os.stat_result) -> os.stat_result:
        return st if self.overrides is None else self.overrides.view(resolved, st)

    # --- resolution -----------------------------------------------------------------------------------

    def _lstat(self, rel: str) -> os.stat_result | None:
        try:
            return os.lstat(self.path(rel))
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            raise TreeError(f"/{rel}: {exc.strerror}", "the tree holds a path the host cannot use") from None

    def path(self, resolved: str) -> str:
        """The host path of an already resolved tree-relative path."""
        return f"{self.root}/{resolved}" if resolved else str(self.root)

    def resolve(self, rel: str, follow_last: bool = False, _links: list[int] | None = None) -> str:
        """The tree-relative real path of `rel` (absolute or relative to the root): symlinks inside the tree
        are followed as a chroot would (the last component only with `follow_last`), at most MAX_LINKS of them
        in all, as the kernel counts. The result names no symlink except, without `follow_last`, possibly its
        last component."""
        parts = _parts(rel)
        if not parts:
            return ""
        links = [0] if _links is None else _links
        parent = self.resolve_dir("/".join(parts[:-1]), links)
        name = parts[-1]
        if name == "..":
            return posixpath.dirname(parent) if parent else ""
        candidate = f"{parent}/{name}" if parent else name
        if follow_last:
            st = self._lstat(candidate)
            if st is not None and stat.S_ISLNK(st.st_mode):
                return self._follow(parent, os.readlink(self.path(candidate)), links, candidate)
        return candidate

    def resolve_dir(self, rel: str, _links: list[int] | None = None) -> str:
        """Like `resolve(rel, follow_last=True)`, cached: for the directories of many paths. Only a resolution
        that ends at a directory already there is kept (a name not made yet may be made a link later).

        Walks forward from the longest prefix already resolved, so a deep path costs no recursion; only
        symbolic links recurse. At most MAX_LINKS links are followed in one lookup, however they nest (`_links`
        counts them): links whose targets name other links twice would otherwise double the work at each
        level."""
        parts = _parts(rel)
        key = "/".join(parts)
        cached = self._dirs.get(key)
        if cached is not None:
            return cached
        links = [0] if _links is None else _links
        known, base = len(parts) - 1, ""
        while known > 0:
            found = self._dirs.get("/".join(parts[:known]))
            if found is not None:
                base = found
                break
            known -= 1
        settled = True
        for i in range(known, len(parts)):
            name = parts[i]
            if name == "..":
                base = posixpath.dirname(base) if base else ""
            else:
                candidate = f"{base}/{name}" if base else name
                st = self._lstat(candidate)
                if st is not None and stat.S_ISLNK(st.st_mode):
                    base = self._follow(base, os.readlink(self.path(candidate)), links, candidate)
                    st = self._lstat(base) if base else None
                    settled = settled and (not base or (st is not None and stat.S_ISDIR(st.st_mode)))
                else:
                    base = candidate
                    settled = settled and st is not None and stat.S_ISDIR(st.st_mode)
            if settled:
                self._dirs["/".join(parts[: i + 1])] = base
        return base

    def _follow(self, base: str, target: str, links: list[int], at: str) -> str:
        """Where the link `at`, found in directory `base`, leads: its target taken one component at a time (a
        `..` after a symlinked component goes up from where that link leads, as the kernel does)."""
        links[0] += 1
        if links[0] > MAX_LINKS:
            raise TreeError(f"too many levels of symbolic links at /{at}", "the tree has a symlink loop")
        joined = target if target.startswith("/") else f"{base}/{target}"
        return self.resolve_dir(joined, links)

    def forget(self, rel: str = "") -> None:
        """Drop cached resolutions at and below `rel` (after replacing a directory or symlink there)."""
        key = "/".join(_parts(rel))
        if not key:
            self._dirs = {"": ""}
            return
        if key not in self._dirs:
            return  # nothing below it is cached either: a cached path has its parent cached
        for k in [k for k in self._dirs if k == key or k.startswith(key + "/")]:
            del self._dirs[k]

    # --- directory descriptors ------------------------------------------------------------------------

    @contextmanager
    def dirfd(self, rel: str, create: bool = False, mode: int = 0o755) -> Iterator[int]:
        """An open descriptor of directory `rel` (resolved in the tree), opened one component at a time
        without following symlinks; missing directories are made with `create`."""
        resolved = self.resolve_dir(rel)
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for name in _parts(resolved):
                try:
                    nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(name, mode, dir_fd=fd)
                    nxt = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                        raise TreeError(
                            f"/{rel}: /{resolved} is not a directory in the image", "the package set conflicts"
                        ) from exc
                    raise
                os.close(fd)
                fd = nxt
            yield fd
        finally:
            os.close(fd)

    def _split(self, rel: str) -> tuple[str, str]:
        resolved = self.resolve(rel)
        if not resolved:
            raise TreeError(f"/{rel} is the root of the image", "name a path below it")
        parent, _, name = resolved.rpartition("/")
        return parent, name

    # --- operations -----------------------------------------------------------------------------------

    def lstat(self, rel: str) -> os.stat_result | None:
        """The entry at `rel` itself (a symlink is not followed), or None."""
        parent, name = self._split(rel)
        try:
            with self.dirfd(parent) as fd:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError, TreeError):
            return None
        return self._view(f"{parent}/{name}" if parent else name, st)

    def is_dir(self, rel: str, follow: bool = True) -> bool:
        """Whether `rel` is a directory (through a final symlink inside the tree with `follow`)."""
        try:
            resolved = self.resolve(rel, follow_last=follow)
        except TreeError:
            return False
        if not resolved:
            return True
        st = self.lstat(resolved)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def mkdir(self, rel: str, mode: int = 0o755) -> None:
        """Make directory `rel` and its missing parents (existing ones keep their mode)."""
        with self.dirfd(rel, create=True, mode=mode):
            pass

    def own_dir(self, rel: str, uid: int, gid: int, mode: int) -> None:
        """Set the owner and mode of directory `rel`."""
        table = self._recording
        with self.dirfd(rel) as fd:
            if table is None:
                os.fchown(fd, uid, gid)
                os.fchmod(fd, mode)
            else:
                os.fchmod(fd, disk_mode(mode, is_dir=True))
                table.set(self.resolve_dir(rel), uid, gid, mode)

    def set_owner_mode(self, rel: str, uid: int, gid: int, mode: int) -> None:
        """Set the owner and mode of the entry at `rel` (the entry itself: a symlink is refused). Only a regular file
        or a directory is opened; a pipe, socket or device node is changed by name, never opened from the host. A
        recorded device node stays one."""
        parent, name = self._split(rel)
        path = f"{parent}/{name}" if parent else name
        table = self._recording
        with self.dirfd(parent) as fd:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except OSError as exc:
                raise TreeError(f"/{path} is not in the image", "name another path") from exc
            if stat.S_ISLNK(st.st_mode):
                raise TreeError(f"/{path} is a symbolic link in the image", "name what it points to")
            if table is not None:
                old = table.get(path)
                table.set(path, uid, gid, mode, old.device if old is not None else None)
                mode = disk_mode(mode, stat.S_ISDIR(st.st_mode))
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                if table is None:
                    os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
                os.chmod(name, mode, dir_fd=fd)  # not a link (just stat'ed): nothing is followed
                return
            flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
            f = os.open(name, flags, dir_fd=fd)
            try:
                if table is None:
                    os.fchown(f, uid, gid)
                os.fchmod(f, mode)
            finally:
                os.close(f)

    def hardlink(self, rel: str, existing: str) -> None:
        """Make `rel` another name of the regular file at `existing` (`ln EXISTING REL`: whatever is at `rel`
        replaced, unless a directory; neither path followed at its last component)."""
        src_parent, src_name = self._split(existing)
        parent, name = self._split(rel)
        path = f"{parent}/{name}" if parent else name
        source = f"{src_parent}/{src_name}" if src_parent else src_name
        st = self._lstat(source)
        if st is None or not stat.S_ISREG(st.st_mode):
            raise TreeError(f"/{existing} is not a regular file in the image", "link to a file the packages install")
        with self.dirfd(src_parent) as src_fd, self.dirfd(parent, create=True) as fd:
            there = self._lstat(path)
            if there is not None and stat.S_ISDIR(there.st_mode):
                raise TreeError(f"/{rel} is a directory in the image", "link another path")
            if there is not None and (there.st_dev, there.st_ino) == (st.st_dev, st.st_ino):
                return  # already that file (or the same path through a link)
            with suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
            os.link(src_name, name, src_dir_fd=src_fd, dst_dir_fd=fd, follow_symlinks=False)
        self.forget()
        if self.overrides is not None:
            self.overrides.copy(source, path)

    def mkfifo(self, rel: str, mode: int = 0o644, uid: int = 0, gid: int = 0) -> None:
        """Make a named pipe at `rel` (nothing may be there)."""
        parent, name = self._split(rel)
        with self.dirfd(parent, create=True) as fd:
            os.mkfifo(name, 0o600, dir_fd=fd)
        self._replaced(f"{parent}/{name}" if parent else name)
        self.set_owner_mode(rel, uid, gid, mode)

    def write(
        self, rel: str, data: bytes | str, mode: int = 0o644, uid: int = 0, gid: int = 0, mtime: int | None = None
    ) -> None:
        """Replace whatever is at `rel` (a file or symlink, never followed) with a regular file."""
        parent, name = self._split(rel)
        path = f"{parent}/{name}" if parent else name
        table = self._recording
        with self.dirfd(parent, create=True) as fd:
            if table is None:
                write_at(fd, name, data, mode, uid, gid)
            else:
                write_at(fd, name, data, disk_mode(mode, is_dir=False), None)
                table.set(path, uid, gid, mode)
            if mtime is not None:
                os.utime(name, (mtime, mtime), dir_fd=fd, follow_symlinks=False)
        self.forget(path)
        self._replaced(path)

    def _replaced(self, path: str) -> None:
        """What was recorded for the entry at `path` (file capabilities) does not carry over to a new one."""
        if self.overrides is not None:
            self.overrides.clear_xattrs(path)

    def read(self, rel: str, limit: int = 16 << 20) -> bytes | None:
        """The content of regular file `rel` (symlinks followed inside the tree), or None when there is none."""
        with self.open(rel) as f:
            return None if f is None else f.read(limit)

    def read_whole(self, rel: str, what: str, limit: int = EDIT_LIMIT) -> bytes | None:
        """All of regular file `rel` (symlinks followed inside the tree), or None when there is none; one larger
        than `limit` is an error naming `what` reads it (never read into memory)."""
        with self.open(rel) as f:
            data = None if f is None else f.read(limit + 1)
        if data is not None and len(data) > limit:
            raise TreeError(
                f"{what}: /{rel} is larger than {limit >> 20} MiB", "a package or a script made it so: check the set"
            )
        return data

    @contextmanager
    def open(self, rel: str) -> Iterator[BinaryIO | None]:
        """Regular file `rel` (symlinks followed inside the tree) open for reading, or None when there is none."""
        try:
            resolved = self.resolve(rel, follow_last=True)
        except TreeError:
            resolved = ""
        f = -1
        if resolved:
            parent, _, name = resolved.rpartition("/")
            try:
                with self.dirfd(parent) as fd:
                    # only a regular file is opened: a device node or pipe in the tree is never opened from the host
                    if stat.S_ISREG(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY
                        f = os.open(name, flags, dir_fd=fd)
            except (OSError, TreeError):
                f = -1
        if f >= 0 and not stat.S_ISREG(os.fstat(f).st_mode):
            os.close(f)
            f = -1
        if f < 0:
            yield None
            return
        with os.fdopen(f, "rb") as file:
            yield file

    def remove(self, rel: str) -> None:
        """Remove the entry at `rel` (a directory with everything below it); a symlink is removed, not followed."""
        parent, name = self._split(rel)
        path = f"{parent}/{name}" if parent else name
        try:
            with self.dirfd(parent) as fd:
                _remove_at(fd, name)
        except (FileNotFoundError, NotADirectoryError):
            pass
        self.forget()  # whatever led through what is gone, under any name
        if self.overrides is not None:
            self.overrides.forget(path)

    def symlink(self, rel: str, target: str, uid: int = 0, gid: int = 0) -> None:
        """Make a symlink at `rel` owned by uid:gid (whatever is there is replaced, unless a directory; the link
        itself is never followed)."""
        parent, name = self._split(rel)
        path = f"{parent}/{name}" if parent else name
        with self.dirfd(parent, create=True) as fd:
            with suppress(FileNotFoundError):
                os.unlink(name, dir_fd=fd)
            os.symlink(target, name, dir_fd=fd)
            self._own_link_at(fd, name, path, uid, gid)
        self.forget()
        self._replaced(path)

    def own_link(self, rel: str, uid: int, gid: int) -> None:
        """Set the owner of the symbolic link at `rel` itself (`lchown`; a link has no mode of its own)."""
        parent, name = self._split(rel)
        path = f"{parent}/{name}" if parent else name
        with self.dirfd(parent) as fd:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISLNK(st.st_mode):
                raise TreeError(f"/{path} is not a symbolic link in the image", "report this as a bug")
            self._own_link_at(fd, name, path, uid, gid)

    def _own_link_at(self, fd: int, name: str, path: str, uid: int, gid: int) -> None:
        """The link `name` of directory `fd` (`path` in the tree) owned by uid:gid, or recorded so."""
        table = self._recording
        if table is None:
            os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
        else:
            table.set(path, uid, gid, 0o777)

    def rename(self, rel: str, new: str) -> None:
        """Rename the entry at `rel` (not following it) to `new`, both resolved inside the tree."""
        parent, name = self._split(rel)
        new_parent, new_name = self._split(new)
        with self.dirfd(parent) as fd, self.dirfd(new_parent) as new_fd:
            os.rename(name, new_name, src_dir_fd=fd, dst_dir_fd=new_fd)
        old_path = f"{parent}/{name}" if parent else name
        new_path = f"{new_parent}/{new_name}" if new_parent else new_name
        self.forget()
        if self.overrides is not None:
            self.overrides.move(old_path, new_path)

    def rmdir(self, rel: str) -> bool:
        """Remove directory `rel` if it is empty; False when it is not (or is not there)."""
        parent, name = self._split(rel)
        path = f"{parent}/{name}" if parent else name
        try:
            with self.dirfd(parent) as fd:
                os.rmdir(name, dir_fd=fd)
        except OSError:
            return False
        self.forget()
        if self.overrides is not None:
            self.overrides.forget(path)
        return True

    def glob(self, pattern: str) -> list[str]:
        """Tree-relative paths matching a shell pattern (`var/log/apt/*`), walking real directories only:
        a symlinked directory on the way is resolved inside the tree, never followed out of it."""
        return sorted(real for _, real in self.glob_named(pattern))

    def glob_named(self, pattern: str, hidden: bool = True) -> list[tuple[str, str]]:
        """`glob`'s matches as (the path as the pattern names it, the path resolved inside the tree), in the
        order of the names; `hidden` False: as the shell, a name starting with `.` matches only a part that
        starts with one."""
        parts = _parts(pattern)
        found = [("", "")]
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            nxt: list[tuple[str, str]] = []
            for named, base in found:
                try:
                    real = self.resolve_dir(base) if base else ""
                    with self.dirfd(real) as fd:
                        names = sorted(os.listdir(fd))
                except (OSError, TreeError):
                    continue
                for name in names:
                    if not hidden and name.startswith(".") and not part.startswith("."):
                        continue
                    if fnmatch.fnmatchcase(name, part):
                        nxt.append((f"{named}/{name}" if named else name, f"{real}/{name}" if real else name))
                if not last:
                    nxt = [n for n in nxt if self._is_dir_inside(n[1])]
            found = nxt
        return found

    def _is_dir_inside(self, rel: str) -> bool:
        try:
            resolved = self.resolve_dir(rel)
        except TreeError:
            return False
        st = self._lstat(resolved)
        return st is not None and stat.S_ISDIR(st.st_mode)

    def walk(self, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
        """Every entry below directory `rel` (not following symlinks), parents before children."""
        start = self.resolve_dir(rel)
        stack = [start]
        while stack:
            current = stack.pop()
            try:
                with self.dirfd(current) as fd:
                    entries = sorted(os.listdir(fd))
                    stats = [(n, os.stat(n, dir_fd=fd, follow_symlinks=False)) for n in entries]
            except (OSError, TreeError):
                continue
            for name, st in stats:
                path = f"{current}/{name}" if current else name
                st = self._view(path, st)
                yield path, st
                if stat.S_ISDIR(st.st_mode):
                    stack.append(path)


_ID = re.compile(r"[0-9]{1,10}")
MAX_ID = 0xFFFFFFFF
"""(uid_t)-1: no id is this large."""


def plain_id(text: str) -> int | None:
    """A uid or gid written as a plain number below (uid_t)-1, or None (`²`, `-1`, `99999999999`, a name)."""
    return int(text) if _ID.fullmatch(text) and int(text) < MAX_ID else None


def account_ids(tree: Tree, name: str) -> dict[str, int]:
    """name -> id of the tree's `etc/passwd` or `etc/group`, as getpwnam finds them: the first line of a name
    wins, root is always known; a line whose id is no plain number below (uid_t)-1 is passed over."""
    out = {"root": 0}
    for line in (tree.read(f"etc/{name}") or b"").decode("utf-8", "replace").splitlines():
        parts = line.split(":")
        found = plain_id(parts[2]) if len(parts) >= 3 else None
        if found is not None:
            out.setdefault(parts[0], found)
    return out


def write_at(fd: int, name: str, data: bytes | str, mode: int = 0o644, uid: int | None = 0, gid: int = 0) -> None:
    """Replace the entry `name` of directory `fd` (a file or symlink, never followed) with a regular file,
    written whole under a temporary name first (left the writer's own when `uid` is None). `name` is one entry
    of that directory: a name with a `/` (or `.`, `..`) would reach another, even the host's, and is refused."""
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise TreeError(f"cannot write {name[:80]!r}: not a file name", "a package or index names a path there")
    raw = data.encode() if isinstance(data, str) else data
    tmp = f".{name}.bootstrap-new"
    with suppress(FileNotFoundError):
        _remove_at(fd, tmp)  # whatever the tree left at that name, a directory too
    out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=fd)
    try:
        view = memoryview(raw)
        while view:
            view = view[os.write(out, view) :]
        if uid is not None:
            os.fchown(out, uid, gid)
        os.fchmod(out, mode)
    finally:
        os.close(out)
    try:
        if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
            os.unlink(tmp, dir_fd=fd)
            raise TreeError(f"cannot write {name}: a directory is there", "the package set conflicts")
    except FileNotFoundError:
        pass
    os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)


def _remove_at(fd: int, name: str) -> None:
    """Remove `name` in directory `fd` with everything below it: no symlink followed, no recursion and one
    open directory at a time (down into a child, back up through its `..`), so no tree is too deep."""
    if not stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
        os.unlink(name, dir_fd=fd)
        return
    names = [name]
    current = os.open(name, _DIR_FLAGS, dir_fd=fd)
    try:
        while names:
            subdir = None
            for child in os.listdir(current):
                if stat.S_ISDIR(os.stat(child, dir_fd=current, follow_symlinks=False).st_mode):
                    subdir = subdir or child
                else:
                    os.unlink(child, dir_fd=current)
            if subdir is not None:
                below = os.open(subdir, _DIR_FLAGS, dir_fd=current)
                os.close(current)
                current, names = below, [*names, subdir]
                continue
            above = fd if len(names) == 1 else os.open("..", _DIR_FLAGS, dir_fd=current)
            os.close(current)
            current = above
            os.rmdir(names.pop(), dir_fd=current)
    finally:
        if current != fd:
            os.close(current)


def remove_tree(path: Path) -> None:
    """Remove a directory and everything in it (missing is fine), never following a symlink, whatever its
    depth: shutil.rmtree recurses and gives up on a deep enough tree. Something below it that goes missing on
    the way (removed by someone else meanwhile) raises FileNotFoundError: the tree may not be gone."""
    parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            os.stat(path.name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        _remove_at(parent, path.name)
    finally:
        os.close(parent)
