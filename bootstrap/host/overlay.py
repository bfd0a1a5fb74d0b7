"""A kept tree seen writable: an overlay whose lower layer is the tree (never written: whatever changes is copied
up) and whose upper layer is a scratch directory on a tmpfs. Hard links stay links when one of them is copied up
(`index=on`), and a directory of the kept tree can be renamed (`redirect_dir=on`), as in any tree.

Root builds only: an ordinary user's overlay (in a user namespace) can do neither. Where the kernel has no overlay,
or a path would need quoting in the mount's options, `usable` says so and the caller builds the tree itself."""

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bootstrap.host.sandbox import mounted
from bootstrap.host.tree import Tree

_PLAIN = re.compile(r"/[A-Za-z0-9._@+/-]*")
"""Paths the overlay's options take as they are (no `,`, `:`, `\\`, `=` or white space to quote)."""
FILESYSTEMS = Path("/proc/filesystems")


def usable(*paths: Path) -> bool:
    """Whether the kernel has overlay file systems and each path can be named in the mount's options."""
    try:
        known = FILESYSTEMS.read_text().split()
    except OSError:
        return False
    return "overlay" in known and all(_PLAIN.fullmatch(str(p)) for p in paths)


@contextmanager
def seen_through(lower: int, scratch: Path, target: Path) -> Iterator[None]:
    """The directory open at `lower` (a descriptor: no path is resolved again) seen at `target`, writable, what
    changes kept in `scratch` (an empty directory on the tmpfs the build writes in), no device or set-id file in it
    honoured, while the context is open."""
    upper, work = scratch / "upper", scratch / "work"
    upper.mkdir(mode=0o755)
    work.mkdir(mode=0o700)
    st = os.fstat(lower)
    os.chown(upper, st.st_uid, st.st_gid)
    target.mkdir(parents=True, exist_ok=True)
    options = f"nosuid,nodev,lowerdir=/proc/self/fd/{lower},upperdir={upper},workdir={work},index=on,redirect_dir=on"
    with mounted("overlay", options, "overlay", target, pass_fds=(lower,)):
        yield


def learn(root: Path) -> None:
    """Look every entry of the tree at `root` up once (nothing read, nothing followed): an overlay mounted anew
    knows none of its lower layer's entries, and the first lookup of each costs several times a later one. What
    changes meanwhile (the scriptlets run) is passed over: the pack reads what is there."""
    for _ in Tree(root).walk():
        pass
