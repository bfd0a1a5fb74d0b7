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
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from bootstrap.deb import debfile
from bootstrap.deb.debfile import DebContents
from bootstrap.deb.filters import PathFilter
from bootstrap.deb.index import Package
from bootstrap.errors import UnpackError
from bootstrap.host.overrides import Overrides
from bootstrap.host.parallel import read_ahead
from bootstrap.host.rootwriter import RootWriter, member_path


@dataclass(frozen=True)
class Unpacked:
    """What dpkg would know about one unpacked package."""

    package: Package
    control: dict[str, bytes]
    paths: tuple[str, ...]
    conffiles: tuple[str, ...]


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
    source = member_path(info.linkname)
    found = files.get(source) if source is not None else None
    if found is None:
        raise UnpackError(
            f"{pkg.name} {pkg.version}: hard link /{rel} points outside the files before it (to {info.linkname!r})",
            "the package is malformed or hostile; do not use this mirror",
        )
    return found


_HOSTILE = "the package is malformed or hostile; do not use this mirror"


def _remember(
    files: dict[str, tuple[tarfile.TarInfo, str | None]], rel: str, info: tarfile.TarInfo, at: str | None
) -> None:
    """Keep track of the package's regular files, which later hard links may name."""
    if info.isreg():
        files[rel] = (info, at)
    else:
        files.pop(rel, None)


DATABASE_FIELDS = frozenset({"status", "conffiles", "config-version"})
"""Fields dpkg's database writes of its own: a control file that gives one would speak for dpkg."""


def check_control(raw: bytes, pkg: Package) -> None:
    """The package's control file as dpkg takes one, as it goes into the image's dpkg database (status, or
    status.d/): one stanza, each field once, none of dpkg's own, and the package its index names: another
    stanza after a blank line would be a package scanners see installed that is not."""
    what = f"{pkg.name} {pkg.version}: its control file"
    fields: dict[str, str] = {}
    text = raw.decode("utf-8", "replace").strip("\n")
    for n, line in enumerate(text.split("\n")):
        if not line.strip():
            raise UnpackError(f"{what} holds more than one stanza (a blank line at line {n + 1})", _HOSTILE)
        if line[0] in " \t":
            if not fields:
                raise UnpackError(f"{what} begins with a continuation line", _HOSTILE)
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or name.lower() in fields or name.lower() in DATABASE_FIELDS:
            raise UnpackError(f"{what}: line {n + 1} ({line[:60]!r}) is not a field dpkg takes there", _HOSTILE)
        fields[name.lower()] = value.strip()
    given = (fields.get("package"), fields.get("version"), fields.get("architecture"))
    if given != (pkg.name, pkg.version, pkg.arch):
        raise UnpackError(f"{what} names {' '.join(map(str, given))}, not the package its index names", _HOSTILE)
    if not text.startswith("Package:"):
        raise UnpackError(f"{what} does not begin with its Package field", _HOSTILE)


def unpack_one(
    writer: RootWriter, pkg: Package, deb: DebContents, pfilter: PathFilter, configured: bool = False
) -> Unpacked:
    """Write one package's files into the root; return its dpkg file list.

    A conffile arrives as `<path>.dpkg-new` too (a hard link to it links to that), for dpkg to configure;
    not when the package counts as `configured` (nothing will configure it). A hard link whose target the
    path filter skipped becomes a copy of the target's data."""
    check_control(deb.control["control"], pkg)
    conffiles = _conffiles(deb.control)
    confset = set(conffiles)
    paths: list[str] = []
    files: dict[str, tuple[tarfile.TarInfo, str | None]] = {}
    with deb.data() as tar:
        for info in tar:
            rel = member_path(info.name)
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


WINDOW = 4
"""How many packages are decompressed ahead of the one being written."""


def _read(pkg: Package, path: Path, expanded: Path | None) -> DebContents:
    return debfile.read(path, pkg.sha256, expanded, f"{pkg.name} {pkg.version}")


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
    closing = DebContents.close
    with read_ahead(lambda item: _read(*item, expanded), items, WINDOW, discard=closing) as reads:
        for (pkg, _), deb in zip(items, reads, strict=True):
            try:
                out.append(unpack_one(writer, pkg, deb, pfilter, configured))
            finally:
                deb.close()
    return out
