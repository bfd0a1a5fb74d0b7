"""Package databases kept in the cache (its `rpmdb` area): the database the host's rpm wrote for a package set,
taken back by a later build of the same set rather than run rpm again (about a fifth of a second of CPU for a
base image's 128 packages, on the two cores the unpack needs).

The database is a function of its inputs (`bootstrap.rpm.rpmdb`), and a kept one is bound to all of them: every
package's sha256 and the files its unpack leaves out, in install order; the epoch; the architecture; the keys
imported (read from the tree once it is unpacked, so checked then); and the writer: the host's rpm program and
the libraries that do its work, librpm, librpmio and SQLite, wherever the host keeps them (each file's size,
times and inode: an upgraded one is a new file, and Debian upgrades the library packages apart from rpm's), and
the SQLite this process vacuums with. It is a derived file of the cache (`bootstrap.host.cache`), proven by the
user's key when read. `verify` writes the database afresh."""

import contextlib
import functools
import hashlib
import os
import shutil
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bootstrap.host.cache import made_by, read_derived, write_derived
from bootstrap.log import log
from bootstrap.rpm.rpmdb import DB

AREA = "rpmdb"
FORMAT = "bootstrap rpm database 1"
FILES = (DB, ".rpm.lock")
"""What a database directory holds once sealed (`rpmdb.install` takes these)."""


LIBRARIES = ("librpm.so.", "librpmio.so.", "libsqlite3.so.")
"""The libraries that write a database for the host's rpm (the names of their files begin so)."""
LIBRARY_DIRS = ("/usr/lib64", "/usr/lib", "/lib64", "/lib", "/usr/local/lib64", "/usr/local/lib")
"""Where hosts keep them: these and their multiarch subdirectories (`x86_64-linux-gnu`)."""


def libraries(tops: Sequence[str] = ()) -> list[str]:
    """The files of `LIBRARIES` in `tops` (`LIBRARY_DIRS`) and their multiarch subdirectories, links resolved,
    each once."""
    found: set[str] = set()
    for top in tops or LIBRARY_DIRS:
        places = [top]
        with contextlib.suppress(OSError), os.scandir(top) as entries:
            places += [e.path for e in entries if e.name.endswith("-linux-gnu") and e.is_dir()]
        for place in places:
            with contextlib.suppress(OSError), os.scandir(place) as entries:
                found.update(os.path.realpath(e.path) for e in entries if e.name.startswith(LIBRARIES))
    return sorted(p for p in found if os.path.isfile(p))


@functools.cache
def writer() -> str:
    """The host's rpm program, its libraries and this process's SQLite, as they are now."""
    path = shutil.which("rpm")
    made = [made_by(p) for p in ([path] if path else []) + libraries()] or ["no rpm"]
    return f"{' '.join(made)} sqlite {sqlite3.sqlite_version}"


def key(packages: Sequence[tuple[str, Iterable[str]]], epoch: int, arch: str) -> str:
    """What a package set's database is kept under: `packages` are (sha256, paths its unpack leaves out), in
    install order."""
    h = hashlib.sha256(f"{FORMAT}\n{writer()}\n{epoch} {arch}\n".encode())
    for sha256, left_out in packages:
        paths = sorted(left_out)
        h.update(f"{sha256} {len(paths)}\n".encode())
        for path in paths:
            h.update(path.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()


def keys_digest(keys: Sequence[tuple[str, bytes]]) -> str:
    """What the keys imported into a database are, as a kept one records them."""
    h = hashlib.sha256(b"keys\n")
    for path, data in keys:
        h.update(f"{path} {len(data)}\n".encode("utf-8", "surrogateescape") + data)
    return h.hexdigest()


@dataclass(frozen=True)
class Kept:
    """A database kept for one package set: the keys it imported, and its files."""

    keys: str
    files: dict[str, bytes]

    def fits(self, keys: Sequence[tuple[str, bytes]]) -> bool:
        return self.keys == keys_digest(keys)

    def write(self, directory: Path) -> None:
        """Its files into `directory` (the private one a database is made in)."""
        for name, data in self.files.items():
            (directory / name).write_bytes(data)


def find(area: Path, key_: str) -> Kept | None:
    """The database kept under `key_`, if there and proven, else None."""
    sections = read_derived(area / key_, key_)
    if sections is None or len(sections) < 2:
        return None
    names = sections[1].decode("utf-8", "replace").split("\n") if sections[1] else []
    if len(names) != len(sections) - 2 or DB not in names or not set(names) <= set(FILES):
        return None
    return Kept(sections[0].decode("ascii", "replace"), dict(zip(names, sections[2:], strict=True)))


def keep(area: Path, key_: str, keys: Sequence[tuple[str, bytes]], directory: Path) -> None:
    """Keep the sealed database in `directory` under `key_` (a failure to write costs the next build its speed)."""
    names = [n for n in FILES if (directory / n).is_file()]
    try:
        contents = [(directory / n).read_bytes() for n in names]
        write_derived(area / key_, key_, [keys_digest(keys).encode(), "\n".join(names).encode(), *contents])
    except OSError as exc:
        log.debug("cache: cannot keep the package database %s: %s", key_, exc)
