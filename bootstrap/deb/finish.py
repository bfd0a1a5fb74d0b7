"""Finish the tree as the official images do: container settings, slim rules, apt sources, scrubbing."""

import fnmatch
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bootstrap.deb.configure import POLICY_RC_D
from bootstrap.deb.filters import PathFilter
from bootstrap.deb.tweaks import ContainerSettings
from bootstrap.host.tree import Tree
from bootstrap.numbers import is_decimal

SCRUB = (
    "etc/machine-id",
    "var/lib/dbus/machine-id",
    "etc/hostname",
    "etc/resolv.conf",
    "etc/apt/apt.conf.d/01autoremove-kernels",
    "var/log/dpkg.log",
    "var/log/alternatives.log",
    "var/log/bootstrap.log",
    "var/log/apt/*",
    "var/cache/ldconfig/aux-cache",
    "var/cache/debconf/*-old",
    "var/lib/dpkg/*-old",
    "var/lib/apt/lists/*",
    "var/cache/apt/*",
    "usr/sbin/policy-rc.d.dpkg-*",
    "tmp/*",
    "var/tmp/*",
    "dev/*",
    "proc/*",
    "sys/*",
)
SCRUB_FILES = ("run/*", "run/*/*")
"""Run-time state: files go, the directories packages make there (`/run/lock`) stay."""


@dataclass(frozen=True)
class AptSourceEntry:
    uri: str
    suites: tuple[str, ...]
    components: tuple[str, ...]


def sources_deb822(entries: Sequence[AptSourceEntry], signed_by: str) -> str:
    """An apt sources file in deb822 form, one stanza per mirror."""
    stanzas = []
    for e in entries:
        stanzas.append(
            f"Types: deb\nURIs: {e.uri}\nSuites: {' '.join(e.suites)}\nComponents: {' '.join(e.components)}\n"
            f"Signed-By: {signed_by}\n"
        )
    return "\n".join(stanzas)


def clamp_shadow(tree: Tree, epoch: int) -> None:
    """Field 3 of shadow files (last password change, in days) never later than the epoch."""
    day = epoch // 86400
    for name in ("etc/shadow", "etc/shadow-"):
        st = tree.lstat(name)
        data = tree.read(name) if st is not None and stat.S_ISREG(st.st_mode) else None
        if st is None or data is None:
            continue
        lines = []
        for line in data.decode("utf-8", "surrogateescape").splitlines():
            fields = line.split(":")
            if len(fields) > 2 and is_decimal(fields[2]) and int(fields[2]) > day:
                fields[2] = str(day)
            lines.append(":".join(fields))
        text = "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")
        tree.write(name, text, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)


def keep_directories(tree: Tree, shipped: Iterable[str], patterns: Sequence[str]) -> None:
    """Make the directories the packages ship that match `patterns` and that the path filters left out
    (`/usr/share/man/man1`, ...): maintainer scripts look for them, and later installs need them."""
    for path in sorted(set(shipped)):
        if any(fnmatch.fnmatchcase(path, p) for p in patterns):
            tree.mkdir(path)


def sweep_filtered(tree: Tree, pfilter: PathFilter) -> None:
    """Remove what maintainer scripts made in filtered-out places (a man page symlink, an info index), as
    the path filters would have kept it out had it come in a package. Directories stay."""
    if not pfilter:
        return
    for prefix in pfilter.excluded_prefixes():
        if not tree.lstat(prefix):
            continue
        doomed = [
            path
            for path, st in tree.walk(prefix)
            if not stat.S_ISDIR(st.st_mode) and pfilter.skips("/" + path, stat.S_ISLNK(st.st_mode))
        ]
        for path in doomed:
            tree.remove(path)


def add_diversions(tree: Tree, settings: ContainerSettings) -> None:
    """The settings' local diversions, as `dpkg-divert --local --rename --add` makes them: a file at the path
    moves to the diverted name, the stand-in takes its place, and dpkg's database records it. A path that is
    diverted already is left as it is."""
    known = (tree.read("var/lib/dpkg/diversions") or b"").decode()
    diverted = set(known.splitlines()[0::3])
    added = ""
    for d in settings.diversions:
        if d.path in diverted:
            continue
        path, moved = d.path.lstrip("/"), d.divert_to.lstrip("/")
        st = tree.lstat(path)
        if st is not None and stat.S_ISREG(st.st_mode) and tree.lstat(moved) is None:
            tree.write(moved, tree.read(path) or b"", stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        tree.write(path, d.content, 0o755)
        added += f"{d.path}\n{d.divert_to}\n:\n"
    if added:
        tree.write("var/lib/dpkg/diversions", known + added)


def finish(
    root: Path,
    pfilter: PathFilter,
    sources: Sequence[AptSourceEntry],
    sources_file: str,
    keyring_names: Sequence[str],
    epoch: int,
    settings: ContainerSettings,
) -> None:
    """Container settings, slim rules kept in the image, apt sources, and every run-dependent file removed."""
    tree = Tree(root)
    tree.write("usr/sbin/policy-rc.d", POLICY_RC_D, 0o755)
    if pfilter:
        tree.write(f"etc/dpkg/dpkg.cfg.d/{settings.filters_file}", pfilter.dpkg_cfg())
        sweep_filtered(tree, pfilter)
    keyring = next(
        (f"/usr/share/keyrings/{k}" for k in keyring_names if tree.lstat(f"usr/share/keyrings/{k}")),
        f"/usr/share/keyrings/{keyring_names[0]}",
    )
    tree.write(f"etc/apt/sources.list.d/{sources_file}", sources_deb822(sources, keyring))
    listed = tree.read("etc/apt/sources.list")
    if settings.sources_list is not None:
        tree.write("etc/apt/sources.list", settings.sources_list)
    elif listed is not None and not listed.strip():
        tree.remove("etc/apt/sources.list")
    kept = [(rel, tree.lstat(rel)) for rel in settings.kept_dirs]
    for pattern in SCRUB:
        for match in tree.glob(pattern):
            tree.remove(match)
    for pattern in SCRUB_FILES:
        for match in tree.glob(pattern):
            st = tree.lstat(match)
            if st is not None and not stat.S_ISDIR(st.st_mode):
                tree.remove(match)
    for rel, st in kept:
        if st is not None and stat.S_ISDIR(st.st_mode):
            tree.mkdir(rel)
            tree.own_dir(rel, st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode))
    for rel, text in settings.files.items():
        tree.write(rel, text)
    for rel, text in settings.executables.items():
        tree.write(rel, text, 0o755)
    add_diversions(tree, settings)
    clamp_shadow(tree, epoch)
