"""The file list of a package as its signed header gives it: path, type and mode, owner by name, mtime, flags
(%doc, %ghost), language, link target, device, hard link sets. The payload only carries content: what a file
is and who owns it comes from here."""

import stat
from collections.abc import Iterable
from dataclasses import dataclass

from bootstrap.errors import UnpackError
from bootstrap.rpm import tags
from bootstrap.rpm.header import Header
from bootstrap.rpm.options import JobOptions

_HINT = "the package is corrupt or hostile"


@dataclass(frozen=True)
class FileEntry:
    path: str
    """Absolute, as rpm lists it (`/usr/bin/ls`)."""
    mode: int
    user: str
    group: str
    mtime: int
    flags: int
    lang: str
    linkto: str
    rdev: int
    size: int
    inode: tuple[int, int]
    """(device, inode) of the package's build: files sharing one are a hard link set."""
    caps: str = ""
    """Its file capabilities as libcap writes them (`cap_net_raw=p`; `%caps`), or empty."""

    @property
    def ghost(self) -> bool:
        return bool(self.flags & tags.RPMFILE_GHOST)


def _column(values: list[int] | list[str], count: int, name: str, what: str) -> None:
    if len(values) != count:
        raise UnpackError(f"{what}: its header lists {count} files but {len(values)} {name}", _HINT)


MAX_FILES = 500_000
"""The most files one package may list (the distributions' largest list tens of thousands): a header's columns
are read only once each is seen to list as many values as there are files, so that a small header whose entries
share their bytes cannot make millions of objects of each."""
_COLUMNS = (
    (tags.DIRINDEXES, "dir indexes"),
    (tags.LONGFILESIZES, "sizes"),
    (tags.FILESIZES, "sizes"),
    (tags.FILEMODES, "modes"),
    (tags.FILEMTIMES, "mtimes"),
    (tags.FILEFLAGS, "flags"),
    (tags.FILEUSERNAME, "users"),
    (tags.FILEGROUPNAME, "groups"),
    (tags.FILELINKTOS, "link targets"),
    (tags.FILERDEVS, "devices"),
    (tags.FILEDEVICES, "device numbers"),
    (tags.FILEINODES, "inodes"),
    (tags.FILELANGS, "languages"),
    (tags.FILECAPS, "capabilities"),
)


def _counted(h: Header, what: str) -> int:
    """How many files the header lists, once its index says every column lists as many (read from the index
    alone)."""
    n = h.count(tags.BASENAMES) or 0
    if n > MAX_FILES:
        raise UnpackError(f"{what}: its header lists {n} files, more than {MAX_FILES}", _HINT)
    for tag, name in _COLUMNS:
        count = h.count(tag)
        if n and count is not None and count != n:
            raise UnpackError(f"{what}: its header lists {n} files but {count} {name}", _HINT)
    dirs = h.count(tags.DIRNAMES) or 0
    if dirs > max(n, 1):
        raise UnpackError(f"{what}: its header lists {n} files but {dirs} directories", _HINT)
    return n


def file_table(h: Header, what: str) -> list[FileEntry]:
    """Every file the header lists, in the header's order."""
    if not _counted(h, what):
        return []
    base = h.strings(tags.BASENAMES)
    dirs, index = h.strings(tags.DIRNAMES), h.int32(tags.DIRINDEXES)
    n = len(base)
    sizes = h.int64(tags.LONGFILESIZES) or h.int32(tags.FILESIZES)
    modes, mtimes, flags = h.int16(tags.FILEMODES), h.int32(tags.FILEMTIMES), h.int32(tags.FILEFLAGS)
    users, groups, links = h.strings(tags.FILEUSERNAME), h.strings(tags.FILEGROUPNAME), h.strings(tags.FILELINKTOS)
    rdevs, devices, inodes = h.int16(tags.FILERDEVS), h.int32(tags.FILEDEVICES), h.int32(tags.FILEINODES)
    langs = h.strings(tags.FILELANGS) or [""] * n
    caps = h.strings(tags.FILECAPS) or [""] * n
    for name, col in (
        ("dir indexes", index),
        ("sizes", sizes),
        ("modes", modes),
        ("mtimes", mtimes),
        ("flags", flags),
        ("users", users),
        ("groups", groups),
        ("link targets", links),
        ("devices", rdevs),
        ("inodes", inodes),
        ("languages", langs),
        ("capabilities", caps),
    ):
        _column(col, n, name, what)
    devices = devices or [0] * n
    out = []
    for i in range(n):
        if index[i] >= len(dirs) or "/" in base[i] or base[i] in ("", ".", ".."):
            raise UnpackError(f"{what}: file {i} of its header has a bad name", _HINT)
        path = dirs[index[i]] + base[i]
        out.append(
            FileEntry(
                path,
                modes[i],
                users[i],
                groups[i],
                mtimes[i],
                flags[i],
                langs[i],
                links[i],
                rdevs[i],
                sizes[i],
                (devices[i] if i < len(devices) else 0, inodes[i]),
                caps[i],
            )
        )
    return out


def lang_wanted(lang: str, install_langs: tuple[str, ...]) -> bool:
    """Whether a file of `%lang(lang)` is installed under `%_install_langs` (rpm's rule: a wanted language
    starting with one of the file's `|`-separated languages; empty, "all" or an unmarked file: always)."""
    if not lang or not install_langs or "all" in install_langs:
        return True
    return any(want.startswith(one) for want in install_langs for one in lang.split("|") if one)


def skipped(files: list[FileEntry], options: JobOptions) -> set[str]:
    """The paths not installed: ghosts, %doc under nodocs, other languages; and, as rpm does, the package's own
    directories that held skipped files and hold nothing installed."""
    out = set()
    for f in files:
        if (options.nodocs and f.flags & tags.RPMFILE_DOC) or not lang_wanted(f.lang, options.install_langs):
            out.add(f.path)
    if out:
        holding_skipped = _parents(out)
        holding_kept = _parents(f.path for f in files if f.path not in out)
        for f in files:
            if not stat.S_ISDIR(f.mode) or f.path in out:
                continue
            below = f.path.rstrip("/") + "/"
            if below in holding_skipped and below not in holding_kept:
                out.add(f.path)
    return out | {f.path for f in files if f.ghost}


def _parents(paths: Iterable[str]) -> set[str]:
    """Every leading part of the paths that ends at a slash: `d/` is in it when a path starts with `d/`, so one
    lookup tells whether a directory holds any of them (a set, not a scan of every path for each directory)."""
    out = set()
    for path in paths:
        at = path.find("/")
        while at >= 0:
            out.add(path[: at + 1])
            at = path.find("/", at + 1)
    return out
