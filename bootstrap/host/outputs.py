"""The output directory: written in a staging directory next to it, then moved into place whole."""

import ctypes
import errno
import json
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bootstrap.errors import BootstrapError, os_error
from bootstrap.host import scratch
from bootstrap.host.plainfile import open_plain
from bootstrap.host.tree import remove_tree

AT_FDCWD = -100
RENAME_EXCHANGE = 2
FULL = 1 << 20
"""Free bytes below which a file system counts as full (a write that failed there filled it)."""


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories in one step (renameat2 RENAME_EXCHANGE); False where the system cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    func = getattr(libc, "renameat2", None)
    if func is None:
        return False
    return bool(func(AT_FDCWD, bytes(a), AT_FDCWD, bytes(b), RENAME_EXCHANGE) == 0)


def _old_prefix(dest: Path) -> str:
    return f".{dest.name}.old-"


def _replace(stage: Path, dest: Path) -> None:
    """Put `stage` at `dest`, whose previous content (if any) is gone after: at every instant `dest` is
    either the old directory or the new one, where the file system can exchange two directories. Where it
    cannot, the old one is first moved aside into a scratch directory of its own (`.<dest>.old-*`): a build
    killed between the two moves leaves no `dest`, and the next build writing there puts the old one back
    (`_recover`)."""
    if not dest.exists():
        os.rename(stage, dest)
        return
    if not dest.is_dir() or dest.is_symlink():
        raise BootstrapError(f"{dest} exists and is not a directory", "choose another -o directory")
    if _exchange(stage, dest):
        remove_tree(stage)
        return
    with scratch.claimed(dest.parent, _old_prefix(dest)) as old:
        os.rename(dest, old / "d")
        os.rename(stage, dest)
        remove_tree(old)


def _recover(dest: Path) -> None:
    """Put back the previous output that a build killed between `_replace`'s two moves left aside (there is no
    `dest`, and an abandoned `.<dest>.old-*` holds it); the next sweep removes what is left."""
    if os.path.lexists(dest):
        return
    prefix = _old_prefix(dest)
    for old in sorted(p for p in dest.parent.iterdir() if p.name.startswith(prefix)):
        if scratch.ours(old) and scratch.abandoned(old) and scratch.ours(old / "d"):
            try:
                os.rename(old / "d", dest)
            except OSError:
                continue
            return


MARKER = "build.json"
"""Every output directory has it: a directory without it is not ours to replace."""


MAX_MARKER = 16 << 20


def check_destination(dest: Path, ours: Callable[[str], bool] = lambda name: True) -> None:
    """Refuse an output directory that cannot be replaced whole or is not ours: a mount point (it cannot be
    renamed), a file, or a directory holding something else than a previous output: one whose MARKER is
    bootstrap's summary and every entry a name `ours` says bootstrap writes (a directory of the user's that
    happens to hold a build.json is not replaced, and its files with it)."""
    if os.path.ismount(dest):
        raise BootstrapError(
            f"{dest} is a mount point: outputs are swapped in whole, and a mount point cannot be",
            f"write below it, e.g. -o {dest / 'out'}",
        )
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise BootstrapError(f"{dest} exists and is not a directory", "choose another -o directory")
    names = sorted(os.listdir(dest)) if dest.is_dir() else []
    if not names:
        return
    hint = "choose another -o directory, or empty it first"
    if not _is_summary(dest / MARKER):
        raise BootstrapError(
            f"{dest} is not empty and holds no earlier output of bootstrap (no {MARKER} of its): it would be replaced",
            hint,
        )
    others = [name for name in names if not ours(name)]
    if others:
        raise BootstrapError(
            f"{dest} holds {others[0]!r}, which bootstrap does not write (and {len(others) - 1} more): replacing the "
            "directory would remove it",
            hint,
        )


def _is_summary(path: Path) -> bool:
    """Whether `path` is a regular file (not through a link) holding bootstrap's own build summary."""
    fd = open_plain(path)
    if fd is None:
        return False
    with open(fd, "rb") as f:
        data = f.read(MAX_MARKER + 1)
    try:
        doc = json.loads(data) if len(data) <= MAX_MARKER else None
    except (ValueError, RecursionError):
        return False
    tool = doc.get("tool") if isinstance(doc, dict) else None
    return isinstance(tool, dict) and tool.get("name") == "bootstrap"


@contextmanager
def staged(dest: Path, ours: Callable[[str], bool] = lambda name: True) -> Iterator[Path]:
    """Yield an empty staging directory; on success it replaces `dest`, on failure it is removed. A staging
    directory left by a killed build is removed by the next build that writes beside it. `dest` must be empty
    or an earlier output (`check_destination`), before the work and again just before it is replaced."""
    dest = Path(os.path.abspath(dest))
    check_destination(dest, ours)
    parent = dest.parent
    with ExitStack() as stack:
        try:
            parent.mkdir(parents=True, exist_ok=True)
            _recover(dest)
            scratch.sweep(parent, _old_prefix(dest))
            stage = stack.enter_context(scratch.claimed(parent, f".{dest.name}.partial-"))
        except OSError as exc:
            raise BootstrapError(f"cannot write to {parent}: {exc.strerror}", "choose another -o directory") from exc
        try:
            yield stage
            os.chmod(stage, 0o755)
            check_destination(dest, ours)  # something may have been put there while the build ran
            _replace(stage, dest)
        except OSError as exc:
            if _written_here(exc, stage):
                raise os_error(exc, dest) from exc
            raise
        finally:
            if stage.exists():
                remove_tree(stage)


def _written_here(exc: OSError, stage: Path) -> bool:
    """Whether an OSError came from writing the outputs: it names a file in the staging directory, or it says
    the disk is full and the staging directory's file system has (almost) nothing left."""
    if exc.filename is not None:
        return Path(os.fsdecode(exc.filename)).is_relative_to(stage)
    if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
        return False
    try:
        st = os.statvfs(stage)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL


def link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except OSError:
        shutil.copyfile(src, dest)
