"""Foreign architectures at native speed: while maintainer scripts run, their tools run natively.

Configuring an arm64 tree on amd64 runs every maintainer script under qemu-user, and most of the time goes
to starting interpreters there (perl for debconf and adduser, dash for every script, coreutils, sed, grep).
The same package versions exist for the host's architecture. So for the time of configure, the tree gets
those native builds: the host's libraries beside the foreign ones (multiarch paths do not collide), the
host's dynamic loader, and, in place of each foreign executable, the native executable of the same package
version. Afterwards every foreign file is put back and every native one removed, so the tree is the one a
build entirely under qemu gives (the end-to-end suite compares them entry by entry).

The native executables are pointed at their dynamic loader through one short name, /.native-ld, written
into their ELF program interpreter: the loader's usual place (/lib64 on amd64) is a directory the foreign
tree does not have and its maintainer scripts tidy away (usr-is-merged removes a stray /lib64).

Programs that answer with their own architecture stay foreign: dpkg (its native architecture is compiled
in), apt (APT::Architecture), the C library's tools (ldconfig writes a cache for its own architecture,
getconf), and uname and arch.
"""

import re
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.deb import debfile
from bootstrap.deb.index import Index, Package
from bootstrap.host.tree import Tree
from bootstrap.log import log

FOREIGN_ONLY_PACKAGES = frozenset({"dpkg", "apt", "libc-bin"})
FOREIGN_ONLY_PROGRAMS = frozenset({"uname", "arch"})
EXECUTABLE_DIRS = ("usr/bin/", "usr/sbin/", "bin/", "sbin/")
BACKUP = ".bootstrap-foreign"
LOADER = "/.native-ld"
"""Shorter than every architecture's own loader path, so it fits in place of it."""
PT_INTERP = 3


@dataclass
class Staged:
    """What was put into the tree, to take out again."""

    swapped: list[str] = field(default_factory=list)
    """Tree paths whose foreign file was renamed to `<path>.bootstrap-foreign` and replaced."""
    added: list[str] = field(default_factory=list)
    """Tree paths (files, links, then directories) added for the native tools."""


def source_version(version: str) -> str:
    """The version without a binary-only rebuild's `+bN`: the same source, built again for one architecture."""
    return re.sub(r"\+b\d+$", "", version)


def counterparts(foreign: list[Package], native_index: Index) -> list[Package] | None:
    """The native package built from the same source version for every architecture-specific foreign package,
    or None when one is missing (a lagging mirror): then nothing runs natively."""
    out = []
    for pkg in foreign:
        if pkg.arch == "all":
            continue
        wanted = source_version(pkg.version)
        match = next(
            (p for p in native_index.versions(pkg.name) if source_version(p.version) == wanted and p.arch != "all"),
            None,
        )
        if match is None:
            log.info(
                "no %s %s for %s: maintainer scripts run under emulation", pkg.name, pkg.version, native_index.arch
            )
            return None
        out.append(match)
    return out


def library_paths(triplet: str) -> tuple[str, ...]:
    """Where a native architecture's libraries and its dynamic loader live: its multiarch directories."""
    return (f"usr/lib/{triplet}/", f"lib/{triplet}/")


def interpreter(elf: bytes) -> tuple[int, int, str] | None:
    """(offset, size, path) of an ELF file's program interpreter, or None (a static or odd file)."""
    if not elf.startswith(b"\x7fELF") or len(elf) < 64 or elf[4] not in (1, 2) or elf[5] not in (1, 2):
        return None
    wide, big = elf[4] == 2, elf[5] == 2

    def num(at: int, size: int) -> int:
        return int.from_bytes(elf[at : at + size], "big" if big else "little")

    phoff, entsize, count = (num(32, 8), num(54, 2), num(56, 2)) if wide else (num(28, 4), num(42, 2), num(44, 2))
    for i in range(count):
        at = phoff + i * entsize
        if at + entsize > len(elf) or num(at, 4) != PT_INTERP:
            continue
        offset, size = (num(at + 8, 8), num(at + 32, 8)) if wide else (num(at + 4, 4), num(at + 16, 4))
        if offset + size > len(elf) or size < 2:
            return None
        return offset, size, elf[offset : offset + size].split(b"\0", 1)[0].decode("utf-8", "replace")
    return None


def retarget(elf: bytes, loader: str = LOADER) -> bytes:
    """The ELF file with its program interpreter replaced by `loader` (padded with NULs in place)."""
    found = interpreter(elf)
    if found is None:
        return elf
    offset, size, _ = found
    name = loader.encode()
    if len(name) >= size:
        raise ValueError(f"loader path {loader} does not fit in {size - 1} bytes")
    return elf[:offset] + name + bytes(size - len(name)) + elf[offset + size :]


def _is_library_path(rel: str, prefixes: tuple[str, ...]) -> bool:
    return any(rel.startswith(p) or rel + "/" == p for p in prefixes)


def stage(tree: Tree, natives: list[tuple[Package, Path]], expanded: Path | None, triplet: str, staged: Staged) -> None:
    """Put the native tools into the tree (see the module's docstring), recording in `staged` as it goes what
    to take out, so that even a failure half-way leaves a record `unstage` can undo."""
    libraries = library_paths(triplet)
    added_dirs: list[str] = []
    loader: str | None = None
    for pkg, deb in natives:
        contents = debfile.read(deb, pkg.sha256, expanded, f"{pkg.name} {pkg.version}")
        swap = pkg.name not in FOREIGN_ONLY_PACKAGES
        try:
            with debfile.TarMembers(contents.data_tar, deb.name) as tar:
                for info in tar:
                    rel = info.name.removeprefix("./").rstrip("/")
                    if _is_library_path(rel, libraries):
                        _add(tree, tar, info, rel, staged, added_dirs)
                    elif swap and rel.startswith(EXECUTABLE_DIRS) and Path(rel).name not in FOREIGN_ONLY_PROGRAMS:
                        loader = _swap(tree, tar, info, rel, staged) or loader
        finally:
            contents.close()
    if loader is not None:
        tree.symlink(LOADER, f"/usr/lib/{triplet}/{Path(loader).name}")
        staged.added.append(LOADER.lstrip("/"))
    staged.added += sorted(set(added_dirs), key=len, reverse=True)
    log.debug("native tools: %d executables, %d library files", len(staged.swapped), len(staged.added))


def _add(tree: Tree, tar: debfile.TarMembers, info: tarfile.TarInfo, rel: str, staged: Staged, dirs: list[str]) -> None:
    if tree.lstat(rel) is not None:
        return
    parent = rel.rpartition("/")[0]
    missing = []
    while parent and tree.lstat(parent) is None:
        missing.append(parent)
        parent = parent.rpartition("/")[0]
    if info.isdir():
        tree.mkdir(rel)
        dirs += [rel, *missing]
        return
    dirs += missing
    if info.isreg():
        tree.write(rel, tar.read(info), stat.S_IMODE(info.mode))
    elif info.issym():
        tree.symlink(rel, info.linkname)
    else:
        return
    staged.added.append(rel)


def _swap(tree: Tree, tar: debfile.TarMembers, info: tarfile.TarInfo, rel: str, staged: Staged) -> str | None:
    """Replace the foreign executable at `rel` by the native one; returns the native one's usual loader."""
    if not info.isreg():
        return None
    real = tree.resolve(rel)
    if real in staged.swapped:
        return None  # the same file under another name (/bin/x and /usr/bin/x in a merged tree)
    st = tree.lstat(real)
    data = tar.read(info)
    if st is None or not stat.S_ISREG(st.st_mode) or not data.startswith(b"\x7fELF"):
        return None
    current = tree.read(real, limit=4)
    if not current or not current.startswith(b"\x7fELF"):
        return None
    found = interpreter(data)
    native = retarget(data)
    tree.rename(real, real + BACKUP)
    staged.swapped.append(real)
    # The foreign file's times too: update-alternatives gives its links the time of the file they name.
    tree.write(real, native, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime))
    return found[2] if found is not None else None


def unstage(tree: Tree, staged: Staged) -> None:
    """Put every foreign file back and remove every native one."""
    for rel in staged.swapped:
        if tree.lstat(rel + BACKUP) is not None:
            tree.rename(rel + BACKUP, rel)
    for rel in staged.added:
        st = tree.lstat(rel)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            tree.rmdir(rel)
        else:
            tree.remove(rel)
