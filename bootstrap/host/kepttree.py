"""The tree a settled package set's unpack left, kept in the cache (its `trees` area), so that a later build of that
set starts from it instead of writing every package's files again: seen through an overlay
(`bootstrap.host.overlay`), the kept tree is never written, and the build's scriptlets, finish and pack run on top
of it as ever. Root builds on a tmpfs only (an ordinary user's overlay cannot keep hard links or rename a
directory), and only once the package set is settled (two builds gave one layer).

It is taken on the word of the layer, as the other derived areas are in a settled build (`Target.check_kept`): the
build compares the layer it packs with the settled one, and a kept tree that gives another layer (changed in the
cache, or unpacked by another bootstrap) is removed and the build done again, unpacking and checking everything.
Its key names the layer's (the package set's lock and the build's kind), bootstrap's own code and the host's
programs the unpack runs (the rpm that writes the package database), so that no version of bootstrap or of those
takes a tree another one unpacked.

Each entry is a directory, `trees/KEY/`: `tree/`, the copy (`cp -a`: owners, modes, times, hard links, extended
attributes), and `record`, a derived file (the user's key proves it) holding the copy's size and what the family's
job knew after its unpack beyond the tree (`Job.unpacked_state`). Pruning takes an entry whole, as recently used
as its record (`bootstrap.host.prune`)."""

import hashlib
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bootstrap.errors import BootstrapError
from bootstrap.host import scratch
from bootstrap.host.cache import code_identity, read_derived, write_derived
from bootstrap.host.tree import Tree, remove_tree
from bootstrap.log import log

AREA = "trees"
RECORD = "record"
TREE = "tree"
_MAKING = ".keep-"
_GOING = ".gone-"


def key(layer_key: str, tools: str) -> str:
    """The entry of the tree whose layer is kept under `layer_key` (`bootstrap.build.pipeline.layer_key`), unpacked
    with the host's `tools` as they are now (`Family.unpack_tools`)."""
    return hashlib.sha256(f"bootstrap tree 2\n{layer_key}\n{code_identity()}\n{tools}".encode()).hexdigest()


class Unusable(BootstrapError):
    """A kept tree that is no longer a directory of the builder's own where it was found."""


@dataclass(frozen=True)
class KeptTree:
    area: Path
    name: str
    state: tuple[bytes, ...]
    """What the build knew after the unpack that left the tree, beyond the tree (`keep`)."""

    @property
    def tree(self) -> Path:
        return self.area / self.name / TREE

    @contextmanager
    def opened(self) -> Iterator[int]:
        """The tree's directory, open (`O_PATH`) while the context is: reached from the area without following a
        link, and only when it is a directory of the builder's that nobody else can write. The overlay is given
        this descriptor, never the path, which something swapped in since `find` could lead elsewhere."""
        fds: list[int] = []
        try:
            try:
                fds.append(os.open(self.area, _PATH))
                for part in (self.name, TREE):
                    fds.append(os.open(part, _PATH | os.O_NOFOLLOW, dir_fd=fds[-1]))
                st = os.fstat(fds[-1])
            except OSError as exc:
                raise Unusable(f"the kept tree {self.name} is gone ({exc.strerror})", "it is kept again") from None
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
                raise Unusable(f"the kept tree {self.name} is not the builder's own", "it is kept again")
            yield fds[-1]
        finally:
            for fd in fds:
                os.close(fd)


_PATH = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC


def find(area: Path, name: str) -> KeptTree | None:
    """The tree kept under `name`, when its record proves (and is marked used) and its tree is a directory."""
    sections = read_derived(area / name / RECORD, name)
    try:
        is_dir = stat.S_ISDIR(os.lstat(area / name / TREE).st_mode)
    except OSError:
        is_dir = False
    if sections is None or len(sections) < 1 or not is_dir:
        return None
    return KeptTree(area, name, tuple(sections[1:]))


def sweep(area: Path) -> None:
    """Remove what builds killed while keeping or removing a tree left behind."""
    for prefix in (_MAKING, _GOING):
        scratch.sweep(area, prefix)


def size_of(entry: Path) -> int:
    """The bytes the entry's record says its tree holds (0 when it does not prove); the record is not marked used."""
    sections = read_derived(entry / RECORD, entry.name, mark=False)
    try:
        size = json.loads(sections[0])["bytes"] if sections else 0
    except (ValueError, KeyError, TypeError):
        return 0
    return size if isinstance(size, int) and size >= 0 else 0


def _settle_copy(source: Path, copy: Path) -> int:
    """Set every extended attribute of the tree's entries on the copy again (`cp` sets them before the owner, and a
    file's new owner clears its capabilities, `security.capability`); the bytes the tree takes."""
    total = 0
    for rel, st in Tree(source).walk():
        total += st.st_blocks * 512
        if stat.S_ISLNK(st.st_mode):
            continue
        for attr in os.listxattr(source / rel, follow_symlinks=False):
            value = os.getxattr(source / rel, attr, follow_symlinks=False)
            os.setxattr(copy / rel, attr, value, follow_symlinks=False)
    return total


def keep(area: Path, name: str, root: Path, state: tuple[bytes, ...]) -> None:
    """Keep a copy of the tree at `root` under `name`, with `state` (what the build knows beyond the tree; one kept
    already stays); a copy that cannot be made costs later builds their speed only."""
    if find(area, name) is not None:
        return
    discard(area, name)  # whatever is there unproven (a record the user's key does not prove, or none)
    with scratch.claimed(area, _MAKING) as making:
        try:
            proc = subprocess.run(["cp", "-a", "--", f"{root}/.", str(making / TREE)], capture_output=True, text=True)
            if proc.returncode != 0:
                raise OSError(proc.stderr.strip() or f"cp exited {proc.returncode}")
            meta = json.dumps({"bytes": _settle_copy(root, making / TREE)}).encode()
            write_derived(making / RECORD, name, [meta, *state])
            os.rename(making, area / name)
        except OSError as exc:
            log.debug("cache: cannot keep the tree %s: %s", name, exc)
        if making.exists():
            remove_tree(making)


def discard(area: Path, name: str) -> None:
    """Remove the tree kept under `name` (it gave another layer)."""
    if os.path.lexists(area / name):
        scratch.retire(area / name, _GOING)
