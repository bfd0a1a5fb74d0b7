"""Unpack .rpm payloads into a root tree, confined to it (`bootstrap.host.rootwriter`): what each file is, its
mode, owner and mtime come from the signed header, the payload gives only content. %ghost files are not
written, %doc files are left out under nodocs and %lang files outside the install languages, as rpm does.
Owners are named in the header and found in the tree's own passwd and group; a name they do not hold yet (an
account a %pre makes) is root for now and given again after the scriptlets (`reown`)."""

import contextlib
import functools
import os
import stat
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.errors import UnpackError
from bootstrap.host.overrides import Overrides
from bootstrap.host.parallel import read_ahead
from bootstrap.host.rootwriter import RootWriter, member_path
from bootstrap.host.tree import Tree, account_ids
from bootstrap.log import log
from bootstrap.rpm import cpio, expanded, filecaps, payload
from bootstrap.rpm.files import FileEntry, file_table, skipped
from bootstrap.rpm.header import Layout, read_layout
from bootstrap.rpm.options import JobOptions

_HOSTILE = "the package is malformed or hostile; do not use this mirror"
READ_AHEAD = 32 << 20
"""A payload that its signed header says inflates to at most this much is inflated whole in a thread while the
packages before it are written (as the deb family reads ahead); a larger one is inflated as it is written."""
MAX_UNPACKED = 2 << 30
"""The most bytes of files one package's signed header may list: a small payload of zeros can say gigabytes (the
deb family bounds a data.tar as much: `bootstrap.deb.debfile.MAX_DATA`)."""
WINDOW = 4
"""How many packages are inflated ahead of the one being written."""
_TYPES = {
    stat.S_IFREG: tarfile.REGTYPE,
    stat.S_IFDIR: tarfile.DIRTYPE,
    stat.S_IFLNK: tarfile.SYMTYPE,
    stat.S_IFCHR: tarfile.CHRTYPE,
    stat.S_IFBLK: tarfile.BLKTYPE,
    stat.S_IFIFO: tarfile.FIFOTYPE,
}


@dataclass(frozen=True)
class Unpacked:
    """One package as unpacked: its file and header, what was written, owners still to give, its files."""

    name: str
    path: Path
    layout: Layout
    written: tuple[str, ...]
    unknown_owners: tuple[FileEntry, ...] = field(default=())
    identities: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """What each of `unknown_owners` was as written (device and inode): `reown` gives owners to that entry only.
    One that a later package of the same unpack writes over is taken out (`_Shared.late`)."""
    table: tuple[FileEntry, ...] | None = None
    """Its files as its header lists them, when read already (else read from the header when first asked)."""

    @functools.cached_property
    def files(self) -> tuple[FileEntry, ...]:
        """Its files as its header lists them."""
        return self.table if self.table is not None else tuple(file_table(self.layout.main, self.path.name))


@dataclass
class _Shared:
    """What the packages of one unpack share."""

    dirs: set[str] = field(default_factory=set)
    """Directories known to be there (a directory is never replaced by anything else: the writer refuses)."""
    late: dict[str, tuple[dict[str, tuple[int, int]], str]] = field(default_factory=dict)
    """The entries whose owner is given later, by real path: the identities that record each (its package's) and
    its path there. Directories are not among them: one is never replaced, and a later package's entry for it
    (a directory several packages own) keeps it."""


def _info(f: FileEntry, rel: str, uid: int, gid: int, epoch: int, what: str) -> tarfile.TarInfo:
    kind = _TYPES.get(stat.S_IFMT(f.mode))
    if kind is None:
        raise UnpackError(f"{what}: {f.path} has an unsupported file type {f.mode:o}", _HOSTILE)
    info = tarfile.TarInfo(rel)
    info.type, info.mode, info.uid, info.gid = kind, stat.S_IMODE(f.mode), uid, gid
    info.mtime = min(f.mtime, epoch)
    info.linkname = f.linkto
    info.devmajor, info.devminor = os.major(f.rdev), os.minor(f.rdev)
    return info


class _Package:
    """The state of one package's unpack: its header's files and the hard link sets being written."""

    def __init__(
        self, writer: RootWriter, read: "_Read", what: str, options: JobOptions, epoch: int, shared: _Shared
    ) -> None:
        self.writer, self.what, self.epoch = writer, what, epoch
        self.shared, self.dirs = shared, shared.dirs
        self.files = read.files
        self.by_path = {f.path: f for f in self.files}
        self.skip = skipped(self.files, options)
        self._accounts: tuple[dict[str, int], dict[str, int]] | None = None
        self.written: list[str] = []
        self.seen: set[str] = set()
        self.unknown: list[FileEntry] = []
        self.identities: dict[str, tuple[int, int]] = {}
        self.links: dict[tuple[int, int], str] = {}
        """A hard link set's file written with its data (a real path)."""
        self.waiting: dict[tuple[int, int], list[tuple[FileEntry, str]]] = {}
        """Members of a hard link set met before its data."""

    def _owner(self, f: FileEntry) -> tuple[int, int]:
        if f.user == "root" and f.group == "root":  # root is 0 whatever the tree's files say (as in rpm)
            return 0, 0
        if self._accounts is None:  # read once a package names another account (most name none)
            self._accounts = account_ids(self.writer.tree, "passwd"), account_ids(self.writer.tree, "group")
        users, groups = self._accounts
        uid, gid = users.get(f.user), groups.get(f.group)
        if uid is None or gid is None:
            self.unknown.append(f)
        return uid or 0, gid or 0

    def _parent(self, rel: str) -> None:
        parent = rel.rpartition("/")[0]
        if not parent or parent in self.dirs:
            return
        if not self.writer.tree.is_dir(parent):
            self.writer.tree.mkdir(parent)
        self.dirs.add(parent)

    def _write(self, f: FileEntry, rel: str, data: cpio.Data | None) -> str:
        self._parent(rel)
        info = _info(f, rel, *self._owner(f), self.epoch, self.what)
        content = data if data is not None and info.isreg() else b""
        written = self.writer.write(info, rel, content)  # type: ignore[arg-type]
        if f.caps and info.isreg():
            value = filecaps.attribute(f.caps, f"{self.what}: {f.path}")
            if value is not None:
                self.writer.set_xattrs(written, {filecaps.ATTRIBUTE: value})
        if info.isdir():
            self.dirs.add(rel)
        self._wrote(f, written)
        return written

    def _link(self, f: FileEntry, rel: str, source: str) -> None:
        self._parent(rel)
        self._owner(f)
        self._wrote(f, self.writer.hardlink(rel, source))

    def _wrote(self, f: FileEntry, real: str) -> None:
        """Note an entry written at `real`: an earlier package's entry there whose owner was to be given later is
        no longer that package's; this one's, when its owner is to be given later, is noted as written."""
        self.written.append(f.path)
        late = self.shared.late
        if late:
            earlier = late.pop(real, None)
            if earlier is not None:
                earlier[0].pop(earlier[1], None)
        if self.unknown and self.unknown[-1] is f:
            st = os.lstat(real)
            self.identities[f.path] = (st.st_dev, st.st_ino)
            if not stat.S_ISDIR(st.st_mode):
                late[real] = (self.identities, f.path)

    def member(self, m: cpio.Member, data: cpio.Data) -> None:
        rel = member_path(m.name)
        if rel is None or not rel:
            raise UnpackError(f"{self.what}: refusing payload entry {m.name!r} outside the root", _HOSTILE)
        f = self.by_path.get("/" + rel)
        if f is None:
            raise UnpackError(f"{self.what}: payload entry {m.name!r} is not in its signed header", _HOSTILE)
        if "/" + rel in self.seen:
            raise UnpackError(f"{self.what}: payload entry {m.name!r} comes twice", _HOSTILE)
        self.seen.add(f.path)
        if stat.S_IFMT(m.mode) != stat.S_IFMT(f.mode):
            raise UnpackError(f"{self.what}: payload entry {m.name!r} is not the type its header says", _HOSTILE)
        regular = stat.S_ISREG(f.mode)
        if regular and m.size not in (f.size, 0) or (m.size == 0 and f.size and m.nlink < 2):
            raise UnpackError(f"{self.what}: payload entry {m.name!r} is not the size its header says", _HOSTILE)
        if not regular and m.size > cpio.MAX_NAME:  # a link's target at most; a directory or node has no data
            raise UnpackError(f"{self.what}: payload entry {m.name!r} has data its type cannot hold", _HOSTILE)
        if f.path in self.skip:
            if regular and m.nlink > 1 and m.size and self.waiting.get(f.inode):
                first, first_rel = self.waiting[f.inode].pop(0)
                self.links[f.inode] = self._write(first, first_rel, data)
                self._flush(f.inode)
            return
        if not regular or m.nlink < 2:
            self._write(f, rel, data)
        elif f.inode in self.links:
            self._link(f, rel, self.links[f.inode])
        elif m.size == 0 and f.size:
            self.waiting.setdefault(f.inode, []).append((f, rel))
        else:
            self.links[f.inode] = self._write(f, rel, data)
            self._flush(f.inode)

    def _flush(self, inode: tuple[int, int]) -> None:
        for f, rel in self.waiting.pop(inode, []):
            self._link(f, rel, self.links[inode])

    def finish(self) -> None:
        if self.waiting:
            (f, _), *_ = next(iter(self.waiting.values()))
            raise UnpackError(f"{self.what}: the payload never gives the data of {f.path}", _HOSTILE)
        missing = [f.path for f in self.files if f.path not in self.seen and f.path not in self.skip]
        if missing:
            raise UnpackError(f"{self.what}: {missing[0]} is in its header but not in its payload", _HOSTILE)


@dataclass(frozen=True)
class _Read:
    """One package's signed header, and its payload inflated ahead (None: inflate it while writing)."""

    layout: Layout
    files: list[FileEntry]
    """The files its header lists."""
    payload: bytes | None


def _bound(files: list[FileEntry]) -> int:
    """The most the payload can inflate to as the signed header lists its files: their data, each member's cpio
    head, name and padding, and the trailer."""
    return sum(f.size + 3 for f in files) + (len(files) + 1) * (cpio.HEAD + cpio.MAX_NAME + 3) + 512


def _read(
    path: Path,
    what: str,
    known: tuple[Layout, list[FileEntry]] | None = None,
    kept: Path | None = None,
    check_kept: bool = True,
) -> _Read:
    """The package's header and file table (`known`: as read already), and its payload inflated unless large:
    from the cache's area of decompressed payloads (`kept`) when it holds it, checked against the signed
    header's digest of the uncompressed payload (unless `check_kept` is False: the build's layer checks it),
    else inflated (and kept there)."""
    if known is not None:
        layout, files = known
    else:
        with open(path, "rb") as f:
            layout = read_layout(f, what)
        files = file_table(layout.main, what)
    declared = sum(f.size for f in files)
    if declared > MAX_UNPACKED:
        raise UnpackError(f"{what}: its header lists {declared} bytes of files, more than {MAX_UNPACKED}", _HOSTILE)
    bound = _bound(files)
    if bound > READ_AHEAD:
        return _Read(layout, files, None)
    digest = expanded.digest_of(layout)
    if kept is not None and digest is not None:
        data = expanded.get(kept, digest, bound, check_kept)
        if data is not None:
            return _Read(layout, files, data)
    with payload.opened(path, layout, what) as stream:
        data = stream.read(bound + 1)
    if len(data) > bound:  # more than the header allows: inflated again while written, where the cpio reader
        return _Read(layout, files, None)  # says what is wrong
    if digest is not None:
        expanded.check(data, digest, what)
        if kept is not None:
            expanded.put(kept, digest, data)
    return _Read(layout, files, data)


def unpack_one(
    writer: RootWriter,
    name: str,
    path: Path,
    options: JobOptions,
    epoch: int,
    shared: _Shared | None = None,
    read: _Read | None = None,
) -> Unpacked:
    """Write one package's files below the writer's root (`shared`: what the packages of one unpack share, kept
    up to date; `read`: its header and payload as read ahead, else read here)."""
    what = f"{name} ({path.name})"
    if read is None:
        read = _read(path, what)
    layout = read.layout
    state = _Package(writer, read, what, options, epoch, shared or _Shared())
    biggest = max((f.size for f in state.files), default=0)
    with _payload(path, read, what) as stream:
        for member, data in cpio.members(stream, what, len(state.files), biggest):
            try:
                state.member(member, data)
            except (OSError, OverflowError, ValueError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                hint = "the package set conflicts"
                raise UnpackError(f"{what}: cannot write {member.name!r}: {reason}", hint) from None
    state.finish()
    return Unpacked(
        name, path, layout, tuple(state.written), tuple(state.unknown), state.identities, tuple(state.files)
    )


@contextlib.contextmanager
def _payload(path: Path, read: _Read, what: str) -> Iterator[cpio.Stream]:
    if read.payload is not None:
        yield cpio.View(read.payload)
    else:
        with payload.opened(path, read.layout, what) as stream:
            yield stream


def unpack_all(
    root: Path,
    items: list[tuple[str, Path]],
    options: JobOptions,
    epoch: int,
    overrides: Overrides | None = None,
    known: Mapping[str, tuple[Layout, list[FileEntry]]] | None = None,
    kept: Path | None = None,
    check_kept: bool = True,
) -> list[Unpacked]:
    """Unpack every package in the order given (dependencies first), the next payloads inflated ahead (`known`:
    headers and file tables the caller has read already, by name; `kept`: the cache's decompressed payloads)."""
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    writer, shared = RootWriter(root, overrides), _Shared()
    seen = known or {}

    def read(item: tuple[str, Path]) -> _Read:
        name, path = item
        return _read(path, f"{name} ({path.name})", seen.get(name), kept, check_kept)

    with read_ahead(read, items, WINDOW) as reads:
        return [
            unpack_one(writer, name, path, options, epoch, shared, read)
            for (name, path), read in zip(items, reads, strict=True)
        ]


def reown(root: Path, unpacked: list[Unpacked], overrides: Overrides | None = None, last: bool = False) -> None:
    """Give the files whose owner names the tree did not know at unpack time the ids it knows now (`last`: the
    names it still does not know are root's, with a warning, as rpm does)."""
    tree = Tree(root, overrides)
    users, groups = account_ids(tree, "passwd"), account_ids(tree, "group")
    table = overrides if overrides is not None and overrides.owners else None
    for u in unpacked:
        written = set(u.written) if u.unknown_owners else set()
        for f in u.unknown_owners:
            if last and (f.user not in users or f.group not in groups):
                log.warning("%s: %s owns %s:%s, which the image does not know: root's", u.name, f.path, f.user, f.group)
            uid, gid = users.get(f.user, 0), groups.get(f.group, 0)
            if (uid, gid) == (0, 0) or f.path not in written:
                continue
            rel = tree.resolve(f.path)
            st = tree.lstat(rel)
            if (
                st is None
                or stat.S_IFMT(st.st_mode) != stat.S_IFMT(f.mode)
                or (st.st_dev, st.st_ino) != u.identities.get(f.path)
            ):
                continue  # removed, or replaced (by a later package): no longer what this package wrote
            if table is not None:
                table.set(rel, uid, gid, stat.S_IMODE(f.mode))
            elif stat.S_ISLNK(st.st_mode):
                parent, _, leaf = rel.rpartition("/")
                with tree.dirfd(parent) as fd:
                    os.chown(leaf, uid, gid, dir_fd=fd, follow_symlinks=False)
            else:
                tree.set_owner_mode(rel, uid, gid, stat.S_IMODE(f.mode))  # the entry itself, never followed
