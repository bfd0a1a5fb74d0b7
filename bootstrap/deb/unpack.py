"""Unpack .deb data into a root tree: dpkg path filters applied while streaming, nothing written outside.

Every path is resolved inside the root the way the chroot will see it: a symlink met on the way
(`/bin -> usr/bin`) is followed, absolute targets are re-rooted and `..` stops at the root, so no
entry can reach outside. The last component is never followed: an entry replaces what is there.

No device node of a package is ever made on the host: an empty file stands in for it and the override table
records the device, owner and mode the package gives it, for the layer to say (so a node such as `b 7:0`
0666 can never open the host's device behind it, in the sandbox or out of it). A table that records owners
too gives nothing a foreign owner: each entry is written as the builder's own, which needs no privilege.
"""

import os
import stat
import tarfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from bootstrap.deb import debfile
from bootstrap.deb.debfile import CHUNK as COPY_BLOCK
from bootstrap.deb.debfile import DebContents
from bootstrap.deb.filters import PathFilter
from bootstrap.deb.index import Package
from bootstrap.errors import UnpackError
from bootstrap.host.overrides import Device, Overrides, disk_mode
from bootstrap.host.tree import Tree


@dataclass(frozen=True)
class Unpacked:
    """What dpkg would know about one unpacked package."""

    package: Package
    control: dict[str, bytes]
    paths: tuple[str, ...]
    conffiles: tuple[str, ...]


class RootWriter:
    """Writes tar entries below `root`, confined to it."""

    def __init__(self, root: Path, overrides: Overrides | None = None) -> None:
        self.root = str(root)
        self.overrides = overrides
        self.tree = Tree(root, overrides)
        self.resolve_dir = self.tree.resolve_dir
        self._forget = self.tree.forget

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
        if not os.path.isdir(self._real(base)):
            raise UnpackError(f"cannot create /{rel}: /{parent} is not a directory", "the package set conflicts")
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
            if os.path.isdir(target):
                return target
            self._clear(target, rel)
            os.mkdir(target, 0o700)
            if not self._record(target, info):
                os.chown(target, info.uid, info.gid)
                os.chmod(target, stat.S_IMODE(info.mode))
            return target
        self._forget(rel)
        self._clear(target, rel)
        if info.isreg():
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            try:
                _copy(fd, data)
                if not self._record(target, info):
                    os.fchown(fd, info.uid, info.gid)
                    os.fchmod(fd, stat.S_IMODE(info.mode))
            finally:
                os.close(fd)
            os.utime(target, (info.mtime, info.mtime), follow_symlinks=False)
        elif info.issym():
            os.symlink(info.linkname, target)
            if not self._record(target, info):
                os.chown(target, info.uid, info.gid, follow_symlinks=False)
            os.utime(target, (info.mtime, info.mtime), follow_symlinks=False)
        elif info.ischr() or info.isblk():
            if self.overrides is None:
                raise UnpackError(
                    f"/{rel}: a device node, and this unpack has no table to record it in",
                    "device nodes are never made on the host: pass an override table",
                )
            # an empty file stands in for the device the layer says
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
            self._record(target, info, Device("chr" if info.ischr() else "blk", info.devmajor, info.devminor))
        elif info.isfifo():
            os.mkfifo(target, stat.S_IMODE(info.mode))
            if not self._record(target, info):
                os.chown(target, info.uid, info.gid)
                os.chmod(target, stat.S_IMODE(info.mode))
        else:
            raise UnpackError(f"/{rel}: unsupported tar entry type {info.type!r}", "the package is malformed")
        return target

    def hardlink(self, rel: str, source: str, dest_rel: str | None = None) -> str:
        """A hard link at `rel` (or `dest_rel`) to `source`, a regular file this package wrote (a real path)."""
        target = self._target(dest_rel or rel)
        if not stat.S_ISREG(os.lstat(source).st_mode):
            raise UnpackError(f"hard link /{rel}: its target is no longer a regular file", "the package is malformed")
        self._forget(rel)
        self._clear(target, rel)
        os.link(source, target, follow_symlinks=False)
        if self.overrides is not None and self.overrides.owners:
            self.overrides.copy(self._rel(source), self._rel(target))
        return target


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy(fd: int, data: bytes | IO[bytes]) -> None:
    """Write all of `data` to `fd`; a stream a block at a time, so no file is ever held in memory whole."""
    if isinstance(data, bytes):
        _write_all(fd, data)
        return
    while block := data.read(COPY_BLOCK):
        _write_all(fd, block)


def _member_path(name: str) -> str | None:
    """The root-relative path of a tar member name, or None when it would leave the root."""
    if "\0" in name or name.startswith("/"):
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


def _conffiles(control: dict[str, bytes]) -> tuple[str, ...]:
    out = []
    for line in control.get("conffiles", b"").decode("utf-8", "replace").splitlines():
        words = line.split()
        if words and words[0].startswith("/"):
            out.append(words[0])
    return tuple(out)


def _link_source(
    pkg: Package, files: dict[str, tuple[tarfile.TarInfo, str | None]], info: tarfile.TarInfo, rel: str
) -> tuple[tarfile.TarInfo, str | None]:
    """What a hard link entry links to: an earlier regular file of the same package, and where it was written
    (None when the path filter skipped it)."""
    source = _member_path(info.linkname)
    found = files.get(source) if source is not None else None
    if found is None:
        raise UnpackError(
            f"{pkg.name} {pkg.version}: hard link /{rel} points outside the files before it (to {info.linkname!r})",
            "the package is malformed or hostile; do not use this mirror",
        )
    return found


def _remember(
    files: dict[str, tuple[tarfile.TarInfo, str | None]], rel: str, info: tarfile.TarInfo, at: str | None
) -> None:
    """Keep track of the package's regular files, which later hard links may name."""
    if info.isreg():
        files[rel] = (info, at)
    else:
        files.pop(rel, None)


def unpack_one(
    writer: RootWriter, pkg: Package, deb: DebContents, pfilter: PathFilter, configured: bool = False
) -> Unpacked:
    """Write one package's files into the root; return its dpkg file list.

    A conffile arrives as `<path>.dpkg-new` too (a hard link to it links to that), for dpkg to configure;
    not when the package counts as `configured` (nothing will configure it). A hard link whose target the
    path filter skipped becomes a copy of the target's data."""
    conffiles = _conffiles(deb.control)
    confset = set(conffiles)
    paths: list[str] = []
    files: dict[str, tuple[tarfile.TarInfo, str | None]] = {}
    with deb.data() as tar:
        for info in tar:
            rel = _member_path(info.name)
            if rel is None:
                raise UnpackError(
                    f"{pkg.name} {pkg.version}: refusing entry {info.name!r} outside the root",
                    "the package is malformed or hostile; do not use this mirror",
                )
            path = "/" + rel if rel else "/."
            paths.append(path)
            if not rel:
                continue
            source: str | None = None
            if info.islnk():
                info, source = _link_source(pkg, files, info, rel)
            if pfilter and pfilter.skips(path, info.isdir() or info.issym()):
                _remember(files, rel, info, None)
                continue
            conffile = path in confset and info.isreg() and not configured
            dest = rel + ".dpkg-new" if conffile else None
            try:
                if source is not None:
                    written = writer.hardlink(rel, source, dest)
                else:
                    if conffile:
                        # As in a debootstrapped tree, a conffile is in place from the start (other packages'
                        # scripts read it before its own package is configured) and dpkg finds the identical,
                        # separate `.dpkg-new` it installs when configuring.
                        writer.write(info, rel, tar.open(info))
                    written = writer.write(info, rel, tar.open(info) if info.isreg() else b"", dest)
            except (OSError, OverflowError, ValueError, tarfile.TarError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                raise UnpackError(
                    f"{pkg.name} {pkg.version}: cannot write {path}: {reason}",
                    "the package is malformed, or the disk is full",
                ) from None
            _remember(files, rel, info, written)
    return Unpacked(pkg, deb.control, tuple(paths), conffiles)


def prepare_root(root: Path, merged_usr_dirs: Iterable[str]) -> None:
    """An empty root with the merged-/usr links (`bin -> usr/bin`, ...) made before any package lands."""
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    (root / "usr").mkdir(mode=0o755, exist_ok=True)
    for name in merged_usr_dirs:
        (root / "usr" / name).mkdir(mode=0o755, exist_ok=True)
        link = root / name
        if not link.is_symlink():
            link.symlink_to(f"usr/{name}")


def drop_unshipped_links(root: Path, merged_usr_dirs: Iterable[str], unpacked: Iterable[Unpacked]) -> None:
    """When the packages ship the merged-/usr links themselves (base-files from trixie on), keep only those.

    Older suites leave the links to the installer, so there every link made by `prepare_root` stays.
    """
    shipped = {p for u in unpacked for p in u.paths if p.count("/") == 1}
    if "/bin" not in shipped:
        return
    for name in merged_usr_dirs:
        link, target = root / name, root / "usr" / name
        if f"/{name}" not in shipped and link.is_symlink():
            link.unlink()
            if target.is_dir() and not any(target.iterdir()):
                target.rmdir()


def _read_ahead(
    items: list[tuple[Package, Path]], expanded: Path | None, window: int = 4
) -> Iterator[tuple[Package, DebContents]]:
    """Decompress the next few packages in threads while the current one is written."""

    def read(pkg: Package, path: Path) -> DebContents:
        return debfile.read(path, pkg.sha256, expanded, f"{pkg.name} {pkg.version}")

    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = deque(pool.submit(read, pkg, path) for pkg, path in items[:window])
        for i, (pkg, _) in enumerate(items):
            if i + window < len(items):
                pending.append(pool.submit(read, *items[i + window]))
            yield pkg, pending.popleft().result()


def unpack_all(
    root: Path,
    items: list[tuple[Package, Path]],
    pfilter: PathFilter,
    expanded: Path | None = None,
    overrides: Overrides | None = None,
    configured: bool = False,
) -> list[Unpacked]:
    """Unpack every package in the given order (decompression runs ahead in threads; with `expanded`, a
    cache of decompressed packages is used and filled; with `overrides`, owners, modes and devices are
    recorded there; `configured`: conffiles are final, with no `.dpkg-new` beside them)."""
    writer = RootWriter(root, overrides)
    out = []
    for pkg, deb in _read_ahead(items, expanded):
        try:
            out.append(unpack_one(writer, pkg, deb, pfilter, configured))
        finally:
            deb.close()
    return out
