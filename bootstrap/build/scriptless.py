"""What the usual maintainer scripts leave in an image, written as data for a scriptless (distroless-style)
build, where nothing runs inside the image.

- accounts: base-passwd's job, reduced to the users such an image has (root, nobody, nonroot), none with a
  login shell, and no password;
- the entries in `DECLARED` (the temporary directories, the name service switch) and in `effects()`, keyed
  by the package whose scripts would have made them (base-files' links, tzdata's /etc/localtime);
- the CA bundle, as update-ca-certificates makes it on a fresh install: every certificate the packages
  ship (all enabled, debconf's default), then the local ones in /usr/local/share/ca-certificates.

Owners and modes go through the tree, so a build without privileges records them for the layer.
"""

import re
import stat
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from bootstrap.build import accounts
from bootstrap.build.families import SCRIPTLESS_GROUPS, SCRIPTLESS_USERS
from bootstrap.build.recipe import Recipe
from bootstrap.errors import RecipeError
from bootstrap.host.tree import Tree

NOLOGIN = "/sbin/nologin"
HOMES = {"root": "/root", "nobody": "/nonexistent"}
"""Homes other than /home/NAME."""

NSSWITCH = """\
# Where the C library looks up names: the local files, then DNS for host names.
# Written by bootstrap for an image without maintainer scripts (no libnss modules beyond glibc's own).
passwd:         files
group:          files
shadow:         files
gshadow:        files

hosts:          files dns
networks:       files

protocols:      files
services:       files
ethers:         files
rpc:            files
"""


@dataclass(frozen=True)
class Declared:
    """One file system entry a maintainer script would have made."""

    path: str
    kind: Literal["dir", "file", "symlink"]
    mode: int = 0o755
    content: str = ""
    """A file's text, or a symlink's target."""


DECLARED: tuple[Declared, ...] = (
    Declared("tmp", "dir", 0o1777),
    Declared("var/tmp", "dir", 0o1777),
    Declared("etc/nsswitch.conf", "file", 0o644, NSSWITCH),
)
"""Made in every scriptless image."""


def effects(origin: str) -> dict[str, tuple[Declared, ...]]:
    """What each package's own scripts make on a first install (debconf's defaults), when it is in the image;
    `origin` is the distribution's vendor (base-files links /etc/dpkg/origins/default to its file)."""
    return {
        "base-files": (
            Declared("etc/dpkg/origins/default", "symlink", content=origin),
            Declared("run/lock", "dir", 0o1777),
            Declared("var/run", "symlink", content="/run"),
            Declared("var/lock", "symlink", content="/run/lock"),
        ),
        "tzdata": (Declared("etc/localtime", "symlink", content="/usr/share/zoneinfo/Etc/UTC"),),
    }


CA_SOURCES = ("usr/share/ca-certificates", "usr/local/share/ca-certificates")
CA_BUNDLE = "etc/ssl/certs/ca-certificates.crt"
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----\s+[A-Za-z0-9+/=\s]+-----END CERTIFICATE-----")


def write_accounts(tree: Tree, recipe: Recipe, epoch: int) -> None:
    """/etc/passwd, /etc/group and /etc/shadow from nothing: root, nobody and nonroot with their groups and
    homes, then the recipe's own groups and users, added as useradd would."""
    groups = dict(SCRIPTLESS_GROUPS)
    passwd, shadow, homes = [], [], []
    day = str(epoch // 86400)
    for name, uid in SCRIPTLESS_USERS:
        gid = uid if uid in groups.values() else 0
        home = HOMES.get(name, f"/home/{name}")
        passwd.append(f"{name}:x:{uid}:{gid}:{name}:{home}:{NOLOGIN}\n")
        shadow.append(f"{name}:*:{day}:0:99999:7:::\n")
        if home != "/nonexistent":
            homes.append((home, uid, gid))
    tree.write("etc/passwd", "".join(passwd), 0o644)
    tree.write("etc/group", "".join(f"{name}:x:{gid}:\n" for name, gid in groups.items()), 0o644)
    tree.write("etc/shadow", "".join(shadow), 0o640)
    for home, uid, gid in homes:
        tree.mkdir(home)
        tree.own_dir(home, uid, gid, 0o700)
    accounts.add(tree, recipe.groups, recipe.accounts, epoch, recipe.source)


def _make(tree: Tree, entry: Declared) -> None:
    if entry.kind == "dir":
        if tree.resolve(entry.path, follow_last=True) != tree.resolve(entry.path):
            tree.remove(entry.path)  # a symlink where the directory belongs
        tree.mkdir(entry.path)
        tree.own_dir(entry.path, 0, 0, entry.mode)
    elif entry.kind == "file":
        tree.write(entry.path, entry.content, entry.mode)
    else:
        st = tree.lstat(entry.path)
        if st is not None and stat.S_ISDIR(st.st_mode):
            tree.remove(entry.path)  # base-files' /var/run, a directory its script turns into a link
        tree.symlink(entry.path, entry.content)


def declare(tree: Tree, packages: Collection[str], origin: str) -> list[str]:
    """Make every entry of `DECLARED`, and those of `effects(origin)` for the packages present; return their
    paths (`origin`: the distribution's vendor name, `debian`)."""
    table = effects(origin)
    made = [*DECLARED, *(e for name in sorted(table) if name in packages for e in table[name])]
    for entry in made:
        _make(tree, entry)
    return [e.path for e in made]


def _certificates(tree: Tree, top: str) -> list[str]:
    """The *.crt files below `top`, as `find | sort` lists them (symlinks to files included)."""
    if tree.lstat(top) is None:
        return []
    real = tree.resolve(top, follow_last=True)
    return sorted(
        (path for path, _ in tree.walk(real) if path.endswith(".crt")),
        key=lambda p: p.encode("utf-8", "surrogateescape"),
    )


def ca_bundle(tree: Tree) -> int:
    """Write /etc/ssl/certs/ca-certificates.crt from the certificates present; return how many it holds
    (none: no bundle is written). A local certificate that is not PEM is an error, as no tool would read it."""
    parts: list[bytes] = []
    for top in CA_SOURCES:
        for path in _certificates(tree, top):
            data = tree.read(path)
            if data is None:
                continue
            if not _PEM.search(data):
                raise RecipeError(
                    f"/{path} is not a PEM certificate: the CA bundle cannot take it",
                    "give the certificate in PEM form (openssl x509 -inform der -in FILE -out FILE.crt)",
                )
            parts.append(data if data.endswith(b"\n") else data + b"\n")
    if parts:
        tree.write(CA_BUNDLE, b"".join(parts), 0o644)
    return len(parts)
