"""What a recipe may reach on this machine: which recipe files are trusted, and which local paths a recipe
may name. A recipe is input from someone else; both rules are applied when it is read, before anything is
fetched.

Trust: a recipe that is looked up (by name, through `extends`, or named in a fleet file) must be one only the
caller and root can change: the file (and a symlink naming it) owned by the caller or root and writable by
no one else; its directory owned by the caller or root, and writable by others only when it is sticky (as
/tmp: nobody can then replace a file they do not own). Run through sudo, the user who ran it counts as the
caller too (they could do anything as root already). Bootstrap's own recipes are as trusted as its code.

Confinement: every local path a recipe names (`files[].source`, `repositories[].keyring`,
`archive.keyring`, and the path of a `file://` URL in `repositories[].url`, `rpm.mirror` or `rpm.metalink`) must
resolve, after symlinks, inside the directory of the recipe file that names it, or
inside a directory the user allows (--allow-path, $BOOTSTRAP_ALLOW_PATH). A keyring may also be one of the
host's public keyrings (the directories the distribution table and apt keep them in: a recipe can pick any
key there by fingerprint already) or one shipped with bootstrap's recipes. A recipe recorded in a build's
build.json has no directory of its own here: its paths must be inside the allowed directories.
"""

import contextlib
import importlib.resources
import os
import pwd
import stat
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bootstrap.build import families
from bootstrap.build.families import DISTROS
from bootstrap.errors import RecipeError
from bootstrap.log import log
from bootstrap.numbers import is_decimal

_REPO_RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def bundled_dirs() -> list[Path]:
    """Bootstrap's own recipe directories: the checkout's, and the installed package's."""
    dirs = [_REPO_RECIPES]
    with contextlib.suppress(ModuleNotFoundError):
        dirs.append(Path(str(importlib.resources.files("bootstrap.recipes"))))
    return [d for d in dirs if d.is_dir()]


def is_bundled(path: Path) -> bool:
    real = Path(os.path.realpath(path.parent))
    return any(real == Path(os.path.realpath(d)) for d in bundled_dirs())


def caller_uids() -> frozenset[int]:
    """Whose files the caller trusts: their own and root's, and, under sudo, the invoking user's."""
    uids = {os.geteuid(), 0}
    sudo = os.environ.get("SUDO_UID", "")
    if os.geteuid() == 0 and is_decimal(sudo):
        uids.add(int(sudo))
    return frozenset(uids)


def _owner(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def directory_problem(directory: Path) -> str | None:
    """Why others could put or replace files in `directory`, or None when only the caller and root can."""
    try:
        st = directory.stat()
    except OSError as exc:
        return f"{directory} cannot be read ({exc.strerror})"
    if st.st_uid not in caller_uids():
        return f"its directory {directory} is owned by {_owner(st.st_uid)}"
    if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
        return f"other users can write to its directory {directory} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def file_problem(path: Path) -> str | None:
    """Why another user could change the recipe file `path` (or what it is read from), or None."""
    try:
        link = path.lstat()
        real = Path(os.path.realpath(path))
        st = real.stat()
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    if stat.S_ISLNK(link.st_mode) and link.st_uid not in caller_uids():
        return f"it is a symlink owned by {_owner(link.st_uid)}"
    if st.st_uid not in caller_uids():
        return f"it is owned by {_owner(st.st_uid)}, not by you or root"
    if st.st_mode & 0o022:
        return f"other users can write to it (mode {stat.S_IMODE(st.st_mode):04o})"
    for d in dict.fromkeys((path.absolute().parent, real.parent)):
        problem = directory_problem(d)
        if problem:
            return problem
    return None


def check_recipe(path: Path, where: str, strict: bool = True) -> None:
    """Refuse (or, for a file the user named themselves, warn about) a recipe another user can change."""
    if is_bundled(path):
        return
    problem = file_problem(path)
    if problem is None:
        return
    if not strict:
        log.warning("warning: recipe %s can be changed by another user: %s", path, problem)
        return
    raise RecipeError(
        f"{where}recipe {path} is not trusted: {problem}",
        "another user could change what it builds: use a recipe only you or root can change "
        "(copy it into a directory of your own), or name it by its path on the command line",
    )


def warn_untrusted(path: Path, what: str) -> None:
    """Say when a file the user named (a fleet file) can be changed by another user."""
    problem = file_problem(path) if path.exists() else None
    if problem:
        log.warning("warning: %s %s can be changed by another user: %s", what, path, problem)


def keyring_dirs() -> list[Path]:
    """Where a recipe's keyring may also be: the host's public keyrings (the distribution table's keyring
    directories, apt's keyring directories) and the keyrings shipped with bootstrap's recipes."""
    system = {k.parent for d in DISTROS.values() for k in d.keyrings}
    apt = families.apt_dir()
    return [*sorted(system), apt / "keyrings", apt / "trusted.gpg.d", *(d / "keys" for d in bundled_dirs())]


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    for root in roots:
        r = Path(os.path.realpath(root))
        if path == r or r in path.parents:
            return True
    return False


def confine(
    where: str, key: str, written: str, base: Path | None, allow: Sequence[Path], keyring: bool, owner: str = "recipe"
) -> str:
    """The absolute path `written` names (relative to `base`, the directory of the recipe that names it), when
    it resolves inside `base`, an allowed directory, or (for a keyring) a keyring directory; else a one-line
    error naming the key and the path. `base` is None for a recorded recipe, which has no directory here.
    `owner`: what names the path, for the error (a fleet file's paths are confined the same way)."""
    path = Path(os.path.normpath((base / written) if base is not None else Path(written).absolute()))
    real = Path(os.path.realpath(path))
    roots = [*([base] if base is not None else []), *allow, *(keyring_dirs() if keyring else [])]
    if _inside(real, roots):
        return str(path)
    shown = f"{written!r} is" if str(real) == written else f"{written!r} resolves to {real},"
    if base is not None:
        message = f"{where}: {key} {shown} outside the {owner}'s directory {base}"
        hint = f"a {owner} may only read files in its own directory: move the file there"
    else:
        message = f"{where}: {key} {shown} outside the directories --allow-path names"
        hint = "a recorded recipe has no directory of its own here"
    hint += f", or, if you trust the {owner} with {real.parent}, pass --allow-path {real.parent}"
    if keyring:
        hint += " (a keyring may also be in /usr/share/keyrings or apt's keyring directories)"
    raise RecipeError(message, hint)


def confine_paths(data: dict[str, Any], base: Path | None, allow: Sequence[Path], where: str) -> None:
    """Make a recipe's local paths absolute (relative to `base`) and confine them, in place. A key fingerprint
    (40 hex digits) in place of a repository keyring names no file."""
    for i, entry in enumerate(data.get("files", [])):
        entry["source"] = confine(where, f"files[{i}].source", entry["source"], base, allow, keyring=False)
    for i, entry in enumerate(data.get("repositories", [])):
        if not is_fingerprint(entry["keyring"]):
            entry["keyring"] = confine(where, f"repositories[{i}].keyring", entry["keyring"], base, allow, True)
    archive = data.get("archive", {})
    if "keyring" in archive:
        archive["keyring"] = confine(where, "archive.keyring", archive["keyring"], base, allow, keyring=True)
    urls = [(f"repositories[{i}].url", entry.get("url")) for i, entry in enumerate(data.get("repositories", []))]
    urls += [(f"rpm.{key}", data.get("rpm", {}).get(key)) for key in ("mirror", "metalink")]
    for key, url in urls:
        if isinstance(url, str) and url.startswith("file:"):
            confine(where, key, urllib.parse.unquote(urllib.parse.urlsplit(url).path), base, allow, keyring=False)


def is_fingerprint(text: str) -> bool:
    compact = text.replace(" ", "")
    return len(compact) == 40 and all(c in "0123456789abcdefABCDEF" for c in compact)
