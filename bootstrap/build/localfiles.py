"""A recipe's local files: copied into the image after the packages, and hashed into the build's records.

A copied file gets the recipe's mode (else 0755 when the source is executable, 0644 otherwise) and owner
(names are looked up in the image's own account files), and the image's epoch as its time, so only its
content and the recipe decide the image's bytes. A directory is copied whole, symlinks as symlinks.
"""

import hashlib
import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

from bootstrap.build.accounts import read_table
from bootstrap.build.recipe import FileSpec
from bootstrap.errors import RecipeError
from bootstrap.host.cache import sha256_file
from bootstrap.host.tree import Tree
from bootstrap.numbers import is_decimal


def _normal_mode(st: os.stat_result) -> int:
    return 0o755 if st.st_mode & 0o111 else 0o644


def _walk(source: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry below `source` (relative paths, sorted, parents first), symlinks not followed."""
    for dirpath, dirnames, filenames in os.walk(source):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            path = base / name
            yield str(path.relative_to(source)), path.lstat()


def digest(path: str) -> str:
    """sha256 of a local input: a file's content; for a directory, of every entry's path, kind, mode and
    content (or link target), so any change that would change the image changes the digest."""
    source = Path(path)
    st = source.lstat()
    if stat.S_ISREG(st.st_mode):
        return sha256_file(source)
    h = hashlib.sha256()
    for rel, entry in _walk(source):
        full = source / rel
        if stat.S_ISREG(entry.st_mode):
            h.update(f"f {rel} {_normal_mode(entry):o} {sha256_file(full)}\n".encode())
        elif stat.S_ISLNK(entry.st_mode):
            h.update(f"l {rel} {os.readlink(full)}\n".encode())
        elif stat.S_ISDIR(entry.st_mode):
            h.update(f"d {rel}\n".encode())
    return h.hexdigest()


def _id(value: str, table: list[list[str]], kind: str, where: str) -> int:
    if is_decimal(value):
        return int(value)
    for row in table:
        if row[0] == value and len(row) > 2 and is_decimal(row[2]):
            return int(row[2])
    raise RecipeError(f"{where}: no {kind} named {value!r} in the image", f"declare it in [[{kind}s]]")


def owner_ids(tree: Tree, owner: str | None, where: str) -> tuple[int, int]:
    """`user:group` (names or numbers) as ids from the image's /etc/passwd and /etc/group; `user` alone
    takes the user's primary group."""
    if not owner:
        return 0, 0
    user, _, group = owner.partition(":")
    passwd = read_table(tree, "etc/passwd")
    uid = _id(user, passwd, "user", where)
    if group:
        return uid, _id(group, read_table(tree, "etc/group"), "group", where)
    for row in passwd:
        if len(row) > 3 and row[2] == str(uid) and is_decimal(row[3]):
            return uid, int(row[3])
    return uid, uid


def _directory(tree: Tree, rel: str, uid: int, gid: int, mode: int, where: str) -> None:
    """A directory the copy needs: made with the recipe's owner and mode when it is new; one the image has
    already (/, /etc, /tmp) keeps its own, as `COPY` in a Dockerfile leaves it."""
    resolved = tree.resolve(rel, follow_last=True)
    if not resolved or tree.lstat(resolved) is not None:
        if not tree.is_dir(rel):
            raise RecipeError(f"{where}: /{rel} is not a directory in the image", "choose another dest")
        return
    tree.mkdir(rel)
    tree.own_dir(rel, uid, gid, mode)


def _clear_way(tree: Tree, rel: str, entry: os.stat_result, where: str) -> None:
    """A file or link may replace a file or link in the image, never a directory."""
    if stat.S_ISDIR(entry.st_mode):
        return
    if tree.is_dir(rel, follow=False):
        raise RecipeError(f"{where}: /{rel} is a directory in the image", "copy the file elsewhere, or into it")


def copy_in(tree: Tree, files: Sequence[FileSpec], where: str = "") -> None:
    """Copy each recipe file or directory to its destination in the tree."""
    for i, spec in enumerate(files):
        uid, gid = owner_ids(tree, spec.owner, f"{where}: files[{i}].owner")
        source = Path(spec.source)
        dest = spec.dest.lstrip("/")
        try:
            st = source.lstat()
        except OSError as exc:
            raise RecipeError(f"{where}: files[{i}].source {source}: {exc.strerror}", "check the path") from exc
        if stat.S_ISDIR(st.st_mode):
            _directory(tree, dest, uid, gid, spec.mode if spec.mode is not None else 0o755, f"{where}: files[{i}]")
            for rel, entry in _walk(source):
                target = f"{dest}/{rel}"
                _clear_way(tree, target, entry, f"{where}: files[{i}]")
                if stat.S_ISDIR(entry.st_mode):
                    _directory(tree, target, uid, gid, 0o755, f"{where}: files[{i}]")
                elif stat.S_ISLNK(entry.st_mode):
                    tree.symlink(target, os.readlink(source / rel), uid, gid)
                elif stat.S_ISREG(entry.st_mode):
                    tree.write(target, (source / rel).read_bytes(), _normal_mode(entry), uid, gid)
        elif stat.S_ISREG(st.st_mode):
            mode = spec.mode if spec.mode is not None else _normal_mode(st)
            tree.write(dest, source.read_bytes(), mode, uid, gid)
        else:
            raise RecipeError(f"{where}: files[{i}].source {source} is not a file or directory", "check the path")
