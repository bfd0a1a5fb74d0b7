"""The image's rpm database (sqlite, as rpm 4.16 and later keep it), written by the host's rpm and made a function
of the inputs: install times and the transaction id from the epoch, one second apart in install order (as rpm
4.18 takes them from SOURCE_DATE_EPOCH; set in the stored headers whatever the host's rpm), the file states of
what the unpack left out set to "not installed" (so `rpm -V` checks what is there), the database rebuilt and
vacuumed, no journal left beside it.

The host's rpm only writes the database (`--justdb`, no scriptlets, no plugins, nothing read from or run in the
tree), chrooted into an empty private directory that holds the database alone (`--root`): the paths a package
names (a `%config` file's, which rpm would look at and hash to compare) are looked up there, never on the host. It
is found on PATH. `RpmDatabase` reads the database from an image layer (`bootstrap inspect`)."""

import contextlib
import os
import shutil
import sqlite3
import stat
import struct
import subprocess
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path

from bootstrap.errors import BootstrapError
from bootstrap.host.tree import Tree
from bootstrap.rpm import tags
from bootstrap.rpm.header import INT32, Header, read_layout

FILESTATES, INSTALLTIME, INSTALLTID = 1029, 1008, 1128
STATE_NOT_INSTALLED = 2
DB = "rpmdb.sqlite"
COLORED = frozenset({"x86_64", "aarch64", "ppc64le", "s390x", "ppc64", "sparc64"})
"""The architectures whose rpm has `%_transaction_color` 3 (multilib: 32- and 64-bit files); it is 0 elsewhere.
The database records it with each package (INSTALLCOLOR): the target's, not the host's."""


class RpmDbError(BootstrapError):
    """The host's rpm could not write the image's package database."""


def rpm_command(dbpath: Path, epoch: int, arch: str) -> tuple[list[str], dict[str, str]]:
    """The host rpm's command line (without packages) and environment that record `arch` packages in `dbpath`, a
    directory whose parent is the root rpm works in (`scratch` makes one that holds nothing else)."""
    color = 3 if arch in COLORED else 0
    argv = ["rpm", "--root", str(dbpath.parent), "--dbpath", f"/{dbpath.name}"]
    argv += ["--define", "_db_backend sqlite", "--noplugins"]
    argv += ["--define", f"_transaction_color {color}"]
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C", "TZ": "UTC"}
    env["HOME"] = "/nonexistent"  # no ~/.rpmmacros of the builder's
    env["SOURCE_DATE_EPOCH"] = str(epoch)
    return argv, env


HOST_TOOL = ("rpm", "writes the package database of RPM-family images", "apt-get install rpm")
"""(program, what the build does with it, how to install it): the one host program this family runs."""


def _run(argv: list[str], env: dict[str, str], what: str) -> None:
    if shutil.which("rpm") is None:
        raise RpmDbError("the host has no rpm to write the image's package database", "install rpm (apt install rpm)")
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, errors="replace", stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        said = [line for line in proc.stderr.splitlines() if line.strip() and "Alien" not in line]
        detail = said[-1].strip() if said else f"exit status {proc.returncode}"
        raise RpmDbError(f"{what}: {detail}", "check the packages and the host's rpm (rpm --version)")


def _header_blob(blob: bytes) -> Header:
    """A header as the database stores it (no magic): its index and data."""
    if len(blob) < 8:
        raise RpmDbError("the package database holds a truncated header", "rebuild the image")
    entries, size = struct.unpack(">II", blob[:8])
    index = {}
    for n in range(entries):
        tag, typ, offset, count = struct.unpack(">IIII", blob[8 + 16 * n : 24 + 16 * n])
        index[tag] = (typ, offset, count)
    start = 8 + 16 * entries
    return Header(0, 0, index, blob[start : start + size], "rpmdb header")


def _settled(blob: bytes, left_out: set[str], epoch: int, n: int) -> bytes:
    """The stored header of the `n`th package installed, patched in place (same length, so nothing else moves):
    the file states of `left_out` "not installed", INSTALLTID the epoch and INSTALLTIME the epoch plus `n` (what
    rpm 4.18 and later write from SOURCE_DATE_EPOCH, whatever the host's rpm)."""
    h = _header_blob(blob)
    data = 8 + 16 * struct.unpack(">I", blob[:4])[0]
    out = bytearray(blob)
    for tag, value in ((INSTALLTID, epoch), (INSTALLTIME, epoch + n)):
        entry = h.index.get(tag)
        if entry is not None and entry[0] == INT32 and entry[2] == 1 and entry[1] + 4 <= len(h.data):
            out[data + entry[1] : data + entry[1] + 4] = struct.pack(">I", value)
    states = h.index.get(FILESTATES)
    if states is not None and left_out:
        _, offset, count = states
        names, dirs, index = h.strings(tags.BASENAMES), h.strings(tags.DIRNAMES), h.int32(tags.DIRINDEXES)
        for i in range(min(count, len(names), len(index))):
            if index[i] < len(dirs) and dirs[index[i]] + names[i] in left_out and offset + i < len(h.data):
                out[data + offset + i] = STATE_NOT_INSTALLED
    return bytes(out)


def write(
    tree: Tree,
    dbpath: str,
    packages: Sequence[tuple[Path, set[str]]],
    epoch: int,
    arch: str,
    keys: Sequence[tuple[str, bytes]] = (),
) -> None:
    """Record `packages` (each .rpm file, in install order, with the paths the unpack left out) in the tree's
    database at `dbpath` (absolute in the image), then import `keys` (`seal`), reproducibly."""
    with scratch(tree.root) as tmp:
        make(tmp, packages, epoch, arch, sealed=False)
        seal(tmp, epoch, arch, keys)
        install(tree, dbpath, tmp, epoch)


@contextlib.contextmanager
def scratch(root: Path) -> Iterator[Path]:
    """A private directory for `make`, in the tree's top directory while it lasts: on the tree's file system (a
    tmpfs when the build has one), as rpm syncs the database it writes, which a disk makes slow. It is the one
    directory of an otherwise empty one, the root rpm is given (`rpm_command`)."""
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".bootstrap-rpmdb-", dir=root) as tmp:
        db = Path(tmp) / "db"
        db.mkdir(mode=0o755)
        yield db


def make(
    directory: Path, packages: Sequence[tuple[Path, set[str]]], epoch: int, arch: str, sealed: bool = True
) -> None:
    """The database of `packages` (as `write` takes them) in `directory` (`scratch` makes one): it
    needs only the package files, so it is made while the tree is unpacked. Unless `sealed`, it is left for
    `seal` (with the keys read from the tree once it is unpacked)."""
    argv, env = rpm_command(directory, epoch, arch)
    if packages:
        install = ["-i", "--justdb", "--nodeps", "--noscripts", "--notriggers", "--nosignature", "--nodigest"]
        install += ["--ignorearch", "--ignoreos", "--ignoresize", "--replacepkgs", "--replacefiles", "--noorder"]
        _run([*argv, *install, *(str(p) for p, _ in packages)], env, "rpm --justdb")
        left_out = {_name_of(p): skip for p, skip in packages}
        _settle(directory, epoch, lambda blob: left_out.get(_header_blob(blob).string(tags.NAME), set()))
    else:
        _run([*argv, "--initdb"], env, "rpm --initdb")
    if sealed:
        seal(directory, epoch, arch)


def _settle(directory: Path, epoch: int, left_out: Callable[[bytes], set[str]], after: int = 0) -> None:
    """Every stored header from the `after`th on settled (`_settled`), numbered in the order rpm stored them."""
    with closing(sqlite3.connect(directory / DB)) as db, db:
        rows = db.execute("SELECT hnum, blob FROM Packages ORDER BY hnum").fetchall()
        for n, (hnum, blob) in enumerate(rows[after:], start=after):
            db.execute("UPDATE Packages SET blob = ? WHERE hnum = ?", (_settled(blob, left_out(blob), epoch, n), hnum))


MAX_KEY = 1 << 20
"""The most bytes of a key file imported (a release's key file is a few kB)."""


def import_keys(directory: Path, keys: Sequence[tuple[str, bytes]], epoch: int, arch: str) -> None:
    """`rpm --import` of each key (path in the image, ASCII-armored bytes) into the database `make` left
    unsealed: a gpg-pubkey header each, installed a second after the packages (as `rpm --import` after the
    install, or dnf's import before the first signed package, leaves one)."""
    argv, env = rpm_command(directory, epoch, arch)
    argv += ["--define", "_keyring rpmdb"]  # a gpg-pubkey header in the database, whatever the host's default
    with closing(sqlite3.connect(directory / DB)) as db:
        (before,) = db.execute("SELECT count(*) FROM Packages").fetchone()
    for n, (name, key) in enumerate(keys):
        path = directory / f"key-{n}.asc"
        path.write_bytes(key)
        _run([*argv, "--import", str(path)], env, f"rpm --import of the image's {name}")
        path.unlink()
    _settle(directory, epoch, lambda blob: set(), after=before)


def seal(directory: Path, epoch: int, arch: str, keys: Sequence[tuple[str, bytes]] = ()) -> None:
    """The database `make` left unsealed finished: `keys` imported (`import_keys`), then rebuilt and vacuumed,
    nothing left beside it."""
    if keys:
        import_keys(directory, keys, epoch, arch)
    argv, env = rpm_command(directory, epoch, arch)
    _run([*argv, "--rebuilddb"], env, "rpm --rebuilddb")
    with closing(sqlite3.connect(directory / DB)) as db:
        db.execute("VACUUM")
    for name in (f"{DB}-wal", f"{DB}-shm"):
        (directory / name).unlink(missing_ok=True)


def install(tree: Tree, dbpath: str, directory: Path, epoch: int) -> None:
    """The database `make` left in `directory` put at `dbpath` in the tree (confined to it; what was there
    before replaced), its files dated `epoch`, with the mode rpm gives them: its directory's, less execute."""
    rel = dbpath.strip("/")
    tree.mkdir(rel)
    real = tree.resolve_dir(rel)
    st = tree.lstat(real)
    mode = stat.S_IMODE(st.st_mode) & 0o666 if st is not None else 0o644  # as rpm gives its files
    for name in (DB, f"{DB}-wal", f"{DB}-shm", ".rpm.lock"):
        tree.remove(f"{real}/{name}")
    for name in sorted(os.listdir(directory)):
        if name.startswith("rpmdb.sqlite") or name == ".rpm.lock":
            tree.write(f"{real}/{name}", (directory / name).read_bytes(), mode, mtime=epoch)


def _name_of(rpm: Path) -> str:
    with open(rpm, "rb") as f:
        return read_layout(f, rpm.name).main.string(tags.NAME)


class RpmDatabase:
    """The rpm database in an image layer: every package's file list (`bootstrap inspect`)."""

    def __init__(self, dbpaths: tuple[str, ...] = ("var/lib/rpm", "usr/lib/sysimage/rpm")) -> None:
        self.members = {f"{d}/{DB}" for d in dbpaths}

    def owns(self, member: str) -> bool:
        return member in self.members

    def files(self, member: str, data: bytes) -> dict[str, list[str]]:
        """name -> absolute paths, of every package the database `data` holds."""
        out: dict[str, list[str]] = {}
        with tempfile.TemporaryDirectory(prefix="bootstrap-rpmdb-") as tmp:
            path = Path(tmp) / DB
            path.write_bytes(data)
            with closing(sqlite3.connect(f"file:{path}?immutable=1", uri=True)) as db:
                try:
                    rows = db.execute("SELECT blob FROM Packages ORDER BY hnum").fetchall()
                except sqlite3.DatabaseError as exc:
                    raise BootstrapError(f"the image's rpm database cannot be read: {exc}", "rebuild it") from None
        for (blob,) in rows:
            h = _header_blob(blob)
            names, dirs, index = h.strings(tags.BASENAMES), h.strings(tags.DIRNAMES), h.int32(tags.DIRINDEXES)
            paths = (dirs[i] + n for n, i in zip(names, index, strict=False) if i < len(dirs))
            out.setdefault(h.string(tags.NAME), []).extend(paths)
        return out
