"""The dynamic linker's cache, /etc/ld.so.cache, made from the libraries of a tree without running anything.

Neither ldconfig will do for a scriptless build: the image's own would have to run inside the image (nothing
runs there, and its architecture may be foreign), and the host's `ldconfig -r ROOT` chroots, which only
root may do. The file is small and its format stable, so it is written here: glibc's "new" format (the only
one ldconfig writes since glibc 2.32, read by every ld.so since 2.2), the same entries `ldconfig -X` would
record for the same tree.

What is scanned, as ldconfig does: the directories /etc/ld.so.conf names (with its `include`s; where the
image has no ld.so.conf, because libc-bin is not in it, the /etc/ld.so.conf.d/*.conf that Debian's one
includes), then the directories built into the dynamic linker. A directory reached twice (/lib is /usr/lib
in a merged-/usr tree) counts once, under the name it was first reached by. Every `lib*.so*` and `ld-*.so*`
ELF shared object there gives one entry per soname: its soname (DT_SONAME, else its file name) as key, and
the soname's path in that directory as value. A soname link that is missing (a library copied in by a
recipe) is made, as ldconfig makes it; links that exist are left as the packages ship them. Libraries in
glibc-hwcaps subdirectories get no entry (ldconfig's cache extension for them is not written): ld.so looks
in those subdirectories of its own directories without a cache.

Layout (integers in the libraries' byte order): a 48-byte header (magic "glibc-ld.so.cache1.1", entry count,
string table size, endianness flag, extension offset 0: none), 24-byte entries sorted as ld.so's binary
search expects (descending by `libcmp`, which compares digit runs as numbers), then the NUL-terminated
strings (a soname shared with the tail of its path), whose offsets count from the start of the file.
"""

import functools
import glob
import posixpath
import stat
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from bootstrap.host.arches import TRIPLETS
from bootstrap.host.tree import Tree
from bootstrap.numbers import DIGITS

PATH = "etc/ld.so.cache"
MAGIC = b"glibc-ld.so.cache1.1"
_HEADER_SIZE = 48
_ENTRY_SIZE = 24

# Entry flags (glibc's ldconfig.h): the library type (always libc6 now), or'ed with the ABI it is built for.
_LIBC6 = 0x0003
_X8664_LIB64, _X8664_LIBX32 = 0x0300, 0x0800
_S390_LIB64, _POWERPC_LIB64, _AARCH64_LIB64 = 0x0400, 0x0500, 0x0A00
_ARM_LIBHF, _ARM_LIBSF = 0x0900, 0x0B00
_RISCV_SOFT, _RISCV_DOUBLE = 0x0F00, 0x1000

_EM_386, _EM_PPC64, _EM_S390, _EM_ARM, _EM_X86_64, _EM_AARCH64, _EM_RISCV = 3, 21, 22, 40, 62, 183, 243
_ET_DYN, _PT_LOAD, _PT_DYNAMIC, _DT_NULL, _DT_STRTAB, _DT_SONAME = 3, 1, 2, 0, 5, 14
_EF_ARM_ABI_FLOAT_SOFT, _EF_ARM_ABI_FLOAT_HARD = 0x200, 0x400
_EF_RISCV_FLOAT_ABI, _EF_RISCV_FLOAT_ABI_DOUBLE = 0x6, 0x4
_ENDIAN_FLAG = {"<": 2, ">": 3}


@dataclass(frozen=True)
class Elf:
    """What the cache needs of a shared object."""

    soname: str | None
    flags: int
    order: str
    """struct's byte order character: `<` little, `>` big."""


def _abi_flags(machine: int, is64: bool, e_flags: int) -> int | None:
    """The ABI bits of an entry, as ldconfig derives them (None: an ABI this module does not know)."""
    if machine == _EM_X86_64:
        return _X8664_LIB64 if is64 else _X8664_LIBX32
    if machine == _EM_AARCH64 and is64:
        return _AARCH64_LIB64
    if machine == _EM_386 and not is64:
        return 0
    if machine == _EM_ARM and not is64:
        if e_flags & _EF_ARM_ABI_FLOAT_HARD:
            return _ARM_LIBHF
        return _ARM_LIBSF if e_flags & _EF_ARM_ABI_FLOAT_SOFT else 0
    if machine == _EM_PPC64 and is64:
        return _POWERPC_LIB64
    if machine == _EM_S390:
        return _S390_LIB64 if is64 else 0
    if machine == _EM_RISCV and is64:
        return _RISCV_DOUBLE if e_flags & _EF_RISCV_FLOAT_ABI == _EF_RISCV_FLOAT_ABI_DOUBLE else _RISCV_SOFT
    return None


def read_elf(f: BinaryIO) -> Elf | None:
    """The soname and cache flags of an ELF shared object, or None when `f` is not one this cache can list."""
    try:
        return _read_elf(f)
    except (struct.error, ValueError, OSError):
        return None


def _read_elf(f: BinaryIO) -> Elf | None:
    ident = f.read(16)
    if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2) or ident[5] not in (1, 2):
        return None
    is64, order = ident[4] == 2, "<" if ident[5] == 1 else ">"
    if is64:
        e_type, machine, _, _, phoff, _, e_flags, _, phentsize, phnum = struct.unpack(order + "HHIQQQIHHH", f.read(42))
        ph_format, dyn_format = order + "IIQQQQQQ", order + "qQ"
    else:
        e_type, machine, _, _, phoff, _, e_flags, _, phentsize, phnum = struct.unpack(order + "HHIIIIIHHH", f.read(30))
        ph_format, dyn_format = order + "IIIIIIII", order + "iI"
    abi = _abi_flags(machine, is64, e_flags)
    if e_type != _ET_DYN or abi is None or phnum > 4096:
        return None
    loads: list[tuple[int, int, int]] = []
    dynamic: tuple[int, int] | None = None
    for i in range(phnum):
        f.seek(phoff + i * phentsize)
        fields = struct.unpack(ph_format, f.read(struct.calcsize(ph_format)))
        if is64:
            p_type, _, p_offset, p_vaddr, _, p_filesz = fields[:6]
        else:
            p_type, p_offset, p_vaddr, _, p_filesz = fields[:5]
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return None
    size = struct.calcsize(dyn_format)
    f.seek(dynamic[0])
    table = f.read(min(dynamic[1], 1 << 20))
    strtab = soname_at = None
    for tag, value in struct.iter_unpack(dyn_format, table[: len(table) - len(table) % size]):
        if tag == _DT_NULL:
            break
        if tag == _DT_STRTAB:
            strtab = value
        elif tag == _DT_SONAME:
            soname_at = value
    soname = None
    if strtab is not None and soname_at is not None:
        for vaddr, offset, filesz in loads:
            if vaddr <= strtab < vaddr + filesz:
                f.seek(strtab - vaddr + offset + soname_at)
                soname = f.read(256).split(b"\0", 1)[0].decode("utf-8", "surrogateescape") or None
                break
    return Elf(soname, _LIBC6 | abi, order)


def libcmp(a: str, b: str) -> int:
    """ld.so's order of library names: like strcmp, but a run of digits compares as a number and sorts after
    any other character."""
    i, j = 0, 0
    while i < len(a):
        if a[i] in DIGITS:
            if j < len(b) and b[j] in DIGITS:
                si, sj = i, j
                while i < len(a) and a[i] in DIGITS:
                    i += 1
                while j < len(b) and b[j] in DIGITS:
                    j += 1
                diff = int(a[si:i]) - int(b[sj:j])
                if diff:
                    return diff
                continue
            return 1
        if j < len(b) and b[j] in DIGITS:
            return -1
        cb = ord(b[j]) if j < len(b) else 0
        if ord(a[i]) != cb:
            return ord(a[i]) - cb
        i += 1
        j += 1
    return -(ord(b[j]) if j < len(b) else 0)


@dataclass(frozen=True)
class Entry:
    soname: str
    path: str
    flags: int
    order: str = "<"


def _conf_dirs(tree: Tree, conf: str, seen: set[str]) -> Iterator[str]:
    """The directories an ld.so.conf file names, its `include`s followed (each file once)."""
    real = tree.resolve(conf, follow_last=True)
    if real in seen:
        return
    seen.add(real)
    data = tree.read(conf)
    if data is None:
        return
    for raw in data.decode("utf-8", "surrogateescape").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("hwcap "):
            continue
        if line.startswith("include ") or line.startswith("include\t"):
            for pattern in line[8:].split():
                base = pattern if pattern.startswith("/") else posixpath.join(posixpath.dirname("/" + conf), pattern)
                for match in tree.glob(base):
                    yield from _conf_dirs(tree, match, seen)
            continue
        for word in line.replace(",", " ").replace(":", " ").split():
            if word.startswith("/"):
                yield word.split("=", 1)[0]


def search_dirs(tree: Tree, arch: str) -> list[str]:
    """The directories ldconfig scans, in order: ld.so.conf's, then the dynamic linker's own."""
    if tree.lstat("etc/ld.so.conf") is not None:
        configured = list(_conf_dirs(tree, "etc/ld.so.conf", set()))
    else:
        seen: set[str] = set()
        configured = [d for conf in tree.glob("etc/ld.so.conf.d/*.conf") for d in _conf_dirs(tree, conf, seen)]
    triplet = TRIPLETS.get(arch)
    builtin = ([f"/lib/{triplet}", f"/usr/lib/{triplet}"] if triplet else []) + ["/lib", "/usr/lib"]
    return configured + builtin


def _candidates(tree: Tree, real_dir: str) -> Iterator[tuple[str, bool]]:
    """(name, is a symlink) of every entry of a directory that may be a library, as ldconfig picks them."""
    for name in tree.glob(f"{glob.escape(real_dir)}/*"):
        base = posixpath.basename(name)
        if (base.startswith("lib") or base.startswith("ld-")) and ".so" in base:
            st = tree.lstat(name)
            if st is not None:
                yield base, stat.S_ISLNK(st.st_mode)


def _scan(tree: Tree, shown: str, real_dir: str, make_links: bool) -> Iterator[Entry]:
    """One entry per soname found in a directory, as ldconfig's search_dir chooses them."""
    chosen: dict[str, tuple[str, bool, Elf]] = {}
    for name, is_link in _candidates(tree, real_dir):
        rel = f"{real_dir}/{name}"
        with tree.open(rel) as f:
            elf = read_elf(f) if f is not None else None
        if elf is None:
            continue
        soname = elf.soname or name
        if is_link:
            # A link stays a link when it is the soname's own, or the development link (libfoo.so, to
            # libfoo.so.1), which then has an entry under its own name; any other link counts as a copy of
            # what it points to.
            if name != soname and not (name.endswith(".so") and soname.startswith(name)):
                is_link = False
            if is_link:
                soname = name
        previous = chosen.get(soname)
        if (
            previous is None
            or (not is_link and previous[1])
            or (is_link == previous[1] and libcmp(previous[0], name) < 0)
        ):
            chosen[soname] = (name, is_link, elf)
    for soname, (name, _, elf) in chosen.items():
        value = soname
        if tree.lstat(f"{real_dir}/{soname}") is None:
            if make_links and "/" not in soname:
                tree.symlink(f"{real_dir}/{soname}", name)
            else:
                value = name
        yield Entry(soname, f"{shown.rstrip('/')}/{value}", elf.flags, elf.order)


def entries(tree: Tree, arch: str, make_links: bool = False) -> list[Entry]:
    """Every entry of the cache, in the order ld.so's binary search expects (`make_links`: missing soname
    links are made; else such an entry names the library's own file)."""
    found: list[Entry] = []
    scanned: set[str] = set()
    for directory in search_dirs(tree, arch):
        real = tree.resolve(directory, follow_last=True)
        st = tree.lstat(real) if real else None
        if real in scanned or st is None or not stat.S_ISDIR(st.st_mode):
            continue
        scanned.add(real)
        found.extend(_scan(tree, directory, real, make_links))

    def order(a: Entry, b: Entry) -> int:
        return libcmp(b.soname, a.soname) or (b.flags - a.flags)

    return sorted(found, key=functools.cmp_to_key(order))


def encode(found: list[Entry]) -> bytes:
    """The cache file for these entries (already in order), in the byte order of their libraries."""
    byte_order = found[0].order if found else "<"
    strings = bytearray()
    offsets: dict[str, int] = {}
    base = _HEADER_SIZE + _ENTRY_SIZE * len(found)

    def offset(text: str) -> int:
        if text not in offsets:
            offsets[text] = base + len(strings)
            strings.extend(text.encode("utf-8", "surrogateescape") + b"\0")
        return offsets[text]

    def key(e: Entry) -> int:
        # The soname is the tail of the path, as a rule: shared, as ldconfig shares it.
        tail = "/" + e.soname
        return offset(e.path) + len(e.path) - len(e.soname) if e.path.endswith(tail) else offset(e.soname)

    body = b"".join(struct.pack(byte_order + "iIIIQ", e.flags, key(e), offset(e.path), 0, 0) for e in found)
    header = MAGIC + struct.pack(byte_order + "IIB3xI12x", len(found), len(strings), _ENDIAN_FLAG[byte_order], 0)
    return header + body + bytes(strings)


def write(tree: Tree, arch: str) -> int:
    """Write /etc/ld.so.cache for the libraries of the tree, making missing soname links; return how many
    entries it has (none: no file)."""
    found = entries(tree, arch, make_links=True)
    if found:
        tree.write(PATH, encode(found), 0o644)
    return len(found)
