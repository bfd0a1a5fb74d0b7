"""Recipes: TOML files naming a distribution, a suite, a package set, local inputs and image settings.

A recipe is found by path, or by name in ./recipes/, then $XDG_CONFIG_HOME/bootstrap/recipes/, then the
bundled ones. `extends` names another recipe, relative to the file that says it (or by name). Every local
path in a recipe is relative to the file that names it and is made absolute when the file is read, so a
merged recipe (and the copy recorded in build.json) is self-contained; it must stay inside that file's
directory, and a recipe looked up must be one only the caller or root can change (bootstrap/build/recipe_trust.py).
"""

import json
import os
import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bootstrap.build import settings
from bootstrap.build.families import DISTROS, SCRIPTLESS_GROUPS, SCRIPTLESS_USERS, Distro, release_names
from bootstrap.build.recipe_schema import merge, validate
from bootstrap.build.recipe_trust import bundled_dirs, check_recipe, confine_paths, directory_problem, is_fingerprint
from bootstrap.build.settings import DEFAULT_PATH, SCHEMA, FileSpec, GroupSpec, Hook, Repository, UserSpec
from bootstrap.errors import MirrorError, RecipeError
from bootstrap.host import mirror_url
from bootstrap.log import log
from bootstrap.numbers import is_decimal

__all__ = ["DEFAULT_PATH", "FileSpec", "GroupSpec", "Hook", "Recipe", "Repository", "UserSpec"]


@dataclass(frozen=True)
class Recipe:
    """A merged recipe: its name and file, and one attribute per setting (bootstrap/build/settings.py says each
    one's key, default and how it is read and recorded)."""

    name: str
    description: str
    distribution: Distro
    suite: str
    components: tuple[str, ...]
    priorities: tuple[str, ...]
    essential: bool
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    prefer: tuple[str, ...]
    path_exclude: tuple[str, ...]
    path_include: tuple[str, ...]
    keep_directories: tuple[str, ...]
    tag: str
    cmd: tuple[str, ...]
    entrypoint: tuple[str, ...]
    env: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]
    source: str
    user: str = ""
    workdir: str = ""
    annotations: tuple[tuple[str, str], ...] = ()
    exposed_ports: tuple[str, ...] = ()
    stop_signal: str = ""
    repositories: tuple[Repository, ...] = ()
    groups: tuple[GroupSpec, ...] = ()
    users: tuple[UserSpec, ...] = ()
    files: tuple[FileSpec, ...] = ()
    customize: tuple[Hook, ...] = ()
    scripts: bool = True
    """False: a scriptless build (nothing runs in the image; the scripts' usual effects are declared)."""
    ignore_depends: tuple[str, ...] = ()
    archive_keyring: str = ""
    """Absolute path of the keyring file the recipe ships for its archive (empty: the host's)."""
    archive_signers: tuple[str, ...] = ()
    """Fingerprints of the keys that may sign the archive (empty: any key of the keyring)."""
    default_user: bool = True
    releases: tuple[tuple[str, str], ...] = ()
    """Codename -> the tables merged over the recipe when that release is built, as JSON text (`for_release`)."""
    package_groups: tuple[str, ...] = ()
    """comps groups asked for (RPM distributions)."""
    rpm_mirror: str = ""
    rpm_repos: tuple[str, ...] = ()
    install_langs: tuple[str, ...] = ()
    nodocs: bool = True
    weak_deps: bool = False
    rpm_write: tuple[tuple[str, str], ...] = ()
    """Path in the image -> content the official build's %post writes."""
    rpm_remove: tuple[str, ...] = ()
    rpm_links: tuple[tuple[str, str], ...] = ()
    """Path in the image -> target of the symbolic links the official build makes."""
    rpm_append: tuple[tuple[str, str], ...] = ()
    """Path in the image -> text the official build's %post appends."""
    rpm_dates: tuple[tuple[str, str], ...] = ()
    """Path in the image -> strftime format of the date the official build writes there."""
    rpm_hardlinks: tuple[tuple[str, str], ...] = ()
    """Path in the image -> the existing file the official build hard-links there."""
    rpm_moves: tuple[tuple[str, str], ...] = ()
    """Path in the image -> the existing file the official build moves there."""
    rpm_mask: tuple[str, ...] = ()
    """systemd units masked when the image has systemctl."""
    rpm_dirs: tuple[str, ...] = ()
    rpm_modes: tuple[tuple[str, str], ...] = ()
    """Path in the image -> octal mode the official build sets."""
    rpm_tmpfiles: tuple[str, ...] = ()
    tmpfiles_boot: bool = False
    tmpfiles_in_image: bool = False
    import_key: bool = False
    rpm_metalink: str = ""
    """The release's key imported into the rpm database (`rpm --import`)."""

    @property
    def links_at(self) -> tuple[str, ...]:
        """Where `rpm.links` makes its links."""
        return tuple(p for p, _ in self.rpm_links)

    @property
    def accounts(self) -> tuple[UserSpec, ...]:
        """The users the image gets: all of them, less the default ones when `default_user` is off."""
        return tuple(u for u in self.users if self.default_user or not u.default)

    def for_release(self, codename: str) -> "Recipe":
        """The recipe as it builds `codename`: its `[release.<codename>]` tables merged over it as `extends` merges
        a child's, and no release tables left (what the build records)."""
        tables = dict(self.releases).get(codename)
        if tables is None:
            return replace(self, releases=()) if self.releases else self
        data = settings.record(replace(self, releases=()))
        for key, value in json.loads(tables).items():
            data[key] = merge(data.get(key, {}), value, SCHEMA[key].sub)
        try:
            return from_data(data, self.name, self.source)
        except RecipeError as exc:
            raise RecipeError(f"{exc.message} (building release {codename}: [release.{codename}])", exc.hint) from None

    def as_dict(self) -> dict[str, Any]:
        """The merged recipe in the recipe format (local paths absolute), for `show` and provenance records."""
        return {"name": self.name, **settings.record(self)}

    @property
    def local_paths(self) -> tuple[str, ...]:
        """Every file on this machine the build reads besides the archive (for hashing into the records)."""
        keyrings = tuple(r.keyring for r in self.repositories if not r.is_fingerprint)
        archive = (self.archive_keyring,) if self.archive_keyring else ()
        return tuple(f.source for f in self.files) + keyrings + archive


def config_dir() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "bootstrap" / "recipes"


def _trusted(directory: Path) -> bool:
    """A directory recipes may be taken from by name: the caller's or root's, not writable by others (in a
    shared working directory, someone else's ./recipes/debian.toml must not stand in for the bundled one)."""
    if directory_problem(directory) is None:
        return True
    log.warning("warning: ignoring recipes in %s: another user owns it or can write to it", directory)
    return False


def search_dirs() -> list[Path]:
    """Where named recipes are looked up: ./recipes/, the user's config, the checkout, the installed package.
    The first two only when they are the caller's own."""
    local = [d for d in (Path.cwd() / "recipes", config_dir()) if d.is_dir() and _trusted(d)]
    candidates = [*local, *bundled_dirs()]
    dirs: list[Path] = []
    for d in candidates:
        if d.is_dir() and d.resolve() not in [x.resolve() for x in dirs]:
            dirs.append(d)
    return dirs


def available() -> list[str]:
    """Names of every recipe found, sorted."""
    return sorted({p.stem for d in search_dirs() for p in d.glob("*.toml")})


def _is_path(name: str) -> bool:
    return name.endswith(".toml") or "/" in name


def _locate(name: str, named_by: Path | None = None, given: bool = False) -> Path:
    """A recipe file by path (relative to the directory of `named_by`, the recipe that names it) or name; one
    another user can change is refused (warned about only when `given`: its path is the user's own word)."""
    relative_to = named_by.parent if named_by is not None else None
    where = f"{named_by}: extends {name!r}: " if named_by is not None else ""
    if _is_path(name):
        path = Path(name)
        if not path.is_absolute() and relative_to is not None:
            path = relative_to / path
        if not path.is_file():
            raise RecipeError(f"recipe file {path} does not exist", "give a path to a .toml recipe or a recipe name")
        check_recipe(_absolute(path), where, strict=not given)
        return _absolute(path)
    dirs = search_dirs()
    if relative_to is not None:
        dirs.insert(0, relative_to)
    for d in dirs:
        path = d / f"{name}.toml"
        if path.is_file():
            check_recipe(_absolute(path), where)
            return _absolute(path)
    raise RecipeError(
        f"unknown recipe {name!r}",
        f"known recipes: {', '.join(available()) or 'none'}; `bootstrap list` shows them; a file needs a path",
    )


def _absolute(path: Path) -> Path:
    return Path(os.path.normpath(path.absolute()))


def _load_raw(
    name: str, seen: tuple[Path, ...], named_by: Path | None, allow: Sequence[Path], given: bool = False
) -> tuple[dict[str, Any], Path]:
    path = _locate(name, named_by, given)
    if path in seen:
        chain = " -> ".join(p.name for p in (*seen, path))
        raise RecipeError(f"{path}: recipes extend each other in a loop ({chain})", "remove one `extends`")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}", "fix the recipe's syntax") from exc
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc.strerror}", "check the path and its permissions") from exc
    validate(data, str(path))
    confine_paths(data, path.parent, allow, str(path))
    parent = data.pop("extends", None)
    if parent is None:
        return data, path
    base, _ = _load_raw(parent, (*seen, path), path, allow)
    return merge(base, data), path


def load(name: str, allow: Sequence[Path] = (), given: bool = False) -> Recipe:
    """Load a recipe by name (or path), following `extends`, and check every key and value. Every local path
    a recipe names must be inside its own directory or one of `allow`; `given`: the user named this recipe
    on the command line (recipe_trust says what is trusted)."""
    data, path = _load_raw(name, (), None, allow, given)
    return from_data(data, path.stem, str(path))


def load_recorded(data: dict[str, Any], source: str, allow: Sequence[Path]) -> Recipe:
    """A resolved recipe recorded in a build's build.json: its local paths must be inside `allow`."""
    validate({k: v for k, v in data.items() if k != "name"}, source)
    confine_paths(data, None, allow, source)
    return from_data(data, str(data["name"]), source)


def from_data(data: dict[str, Any], name: str, source: str) -> Recipe:
    """A recipe from already merged data (a recipe file, or the resolved recipe recorded in build.json): every
    setting's value, or its default (bootstrap/build/settings.py)."""
    validate({k: v for k, v in data.items() if k != "name"}, source)
    try:
        values = settings.values(data, name=name)
    except settings.InvalidValue as exc:
        raise RecipeError(f"{source}: unknown {exc.row.key} {exc.value!r}", exc.row.invalid) from None
    recipe = Recipe(name=name, source=source, **values)
    check(recipe)
    for codename, _ in recipe.releases:
        recipe.for_release(codename)  # each release's recipe holds together too, checked before it is built
    return recipe


UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\@-]{1,250}\.[a-z]{3,9}")
"""A systemd unit's file name (`getty.target`, `container-getty@.service`): no path, a type suffix."""
ACCOUNT_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}\$?")
"""What useradd and groupadd accept in Debian (NAME_REGEX relaxed as by --badname is not allowed here)."""


def _account_fields(where: str, what: str, name: str, fields: dict[str, str]) -> None:
    """Names a passwd or group line can hold: no `:`, no control characters, absolute home and shell."""
    if not ACCOUNT_NAME.fullmatch(name):
        raise RecipeError(
            f"{where}: {what} name {name!r} is not a valid account name",
            "use lower-case letters, digits, '_', '-' and '.', starting with a letter or '_', at most 32 characters",
        )
    for key, value in fields.items():
        if ":" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
            raise RecipeError(f"{where}: {what} {name}: {key} {value!r} has ':' or a control character", "remove it")
        if key in ("home", "shell") and value and not value.startswith("/"):
            raise RecipeError(f"{where}: {what} {name}: {key} {value!r} is not an absolute path", "write it from /")


def check(recipe: Recipe) -> None:
    """What a recipe says must hold together: files exist, accounts are consistent, names resolve. Checked
    before anything is downloaded; the image's own account files are checked again when it is built."""
    where = recipe.source
    base = DISTROS[recipe.distribution]
    for key in settings.foreign_keys(recipe):
        raise RecipeError(
            f"{where}: {key} is not read when building {recipe.distribution.value} (a {settings.family_of(recipe)} "
            "distribution): it would be ignored",
            "remove it",
        )
    for i, f in enumerate(recipe.files):
        if not os.path.lexists(f.source):
            raise RecipeError(
                f"{where}: files[{i}].source {f.source} does not exist",
                "paths are relative to the recipe that names them",
            )
        if not f.dest.startswith("/"):
            raise RecipeError(f"{where}: files[{i}].dest {f.dest!r} is not absolute", 'write it as "/path/in/image"')
    for i, r in enumerate(recipe.repositories):
        try:
            mirror_url.checked(r.url, f"{where}: repositories[{i}].url")
        except MirrorError as exc:
            raise RecipeError(exc.message, exc.hint) from None
        if not r.is_fingerprint and not Path(r.keyring).is_file():
            raise RecipeError(
                f"{where}: repositories[{i}].keyring {r.keyring} does not exist",
                "give a keyring file next to the recipe, or the key's full fingerprint (40 hex digits)",
            )
    written = [p for p, _ in recipe.rpm_write]
    rpm_paths = (
        ("rpm.write", written),
        ("rpm.remove", [p.removeprefix("!") for p in recipe.rpm_remove]),
        ("rpm.links", recipe.links_at),
        ("rpm.append", [p for p, _ in recipe.rpm_append]),
        ("rpm.dates", [p for p, _ in recipe.rpm_dates]),
        ("rpm.hardlinks", [q for pair in recipe.rpm_hardlinks for q in pair]),
        ("rpm.moves", [q for pair in recipe.rpm_moves for q in pair]),
        ("rpm.dirs", recipe.rpm_dirs),
        ("rpm.modes", [p for p, _ in recipe.rpm_modes]),
        ("rpm.tmpfiles", [p for p in recipe.rpm_tmpfiles if p != "*"]),
    )
    for key, paths in rpm_paths:
        for path in paths:
            if not path.startswith("/") or "/../" in f"{path}/":
                raise RecipeError(f"{where}: {key}: {path!r} is not an absolute path", 'write it as "/path/in/image"')
            if not path.strip("/."):
                raise RecipeError(f"{where}: {key}: {path!r} names the image's root", "name a path inside the image")
    releases = release_names(base)
    for codename, _ in recipe.releases:
        if releases is not None and codename not in releases:  # an alias (`latest`) is resolved before the choice
            raise RecipeError(
                f"{where}: [release.{codename}]: {recipe.distribution.value} has no release {codename!r}",
                f"key it by one of {', '.join(sorted(releases))}",
            )
    for path, fmt in recipe.rpm_dates:
        if "%" not in fmt or "\0" in fmt or len(fmt) > 200:
            raise RecipeError(f"{where}: rpm.dates: {path!r} has no date format {fmt!r}", 'write it as "%Y%m%d_%H%M"')
    for path, mode in recipe.rpm_modes:
        if not re.fullmatch(r"0?[0-7]{3,4}", mode):
            raise RecipeError(f"{where}: rpm.modes: {path!r} has mode {mode!r}, not octal", 'write it as "0700"')
    for unit in recipe.rpm_mask:
        if not UNIT_NAME.fullmatch(unit):
            raise RecipeError(f"{where}: rpm.mask: {unit!r} is not a systemd unit name", 'write it as "getty.target"')
    for path, target in recipe.rpm_links:
        if not target or "\0" in target or len(target) > 4095:
            raise RecipeError(f"{where}: rpm.links: {path!r} has no usable target {target!r}", "give the link's target")
    if not recipe.scripts and recipe.customize:
        raise RecipeError(
            f"{where}: customize hooks need maintainer scripts' sandbox, and this recipe has scripts = false",
            "drop [[customize]], or build with scripts (remove `scripts = false`)",
        )
    if recipe.archive_keyring and not Path(recipe.archive_keyring).is_file():
        raise RecipeError(
            f"{where}: archive.keyring {recipe.archive_keyring} does not exist",
            "give a keyring file next to the recipe",
        )
    for fpr in recipe.archive_signers:
        if not is_fingerprint(fpr):
            raise RecipeError(
                f"{where}: archive.signers: {fpr!r} is not a full fingerprint", "write all 40 hex digits of the key"
            )
    for i, g in enumerate(recipe.groups):
        _account_fields(where, f"groups[{i}]", g.name, {"password": g.password})
    for i, u in enumerate(recipe.users):
        _account_fields(where, f"users[{i}]", u.name, {"comment": u.comment, "home": u.home, "shell": u.shell})
        for extra in u.groups:
            _account_fields(where, f"users[{i}] ({u.name}) groups:", extra, {})
    groups = dict(base.base_groups if recipe.scripts else SCRIPTLESS_GROUPS)
    for i, g in enumerate(recipe.groups):
        if g.name in groups or g.gid in groups.values():
            taken = g.name if g.name in groups else f"gid {g.gid}"
            raise RecipeError(f"{where}: groups[{i}]: {taken} is already taken", "choose another name or gid")
        groups[g.name] = g.gid
    users = dict(base.base_users if recipe.scripts else SCRIPTLESS_USERS)
    for i, u in enumerate(recipe.accounts):
        if u.name in users or u.uid in users.values():
            taken = u.name if u.name in users else f"uid {u.uid}"
            raise RecipeError(f"{where}: users[{i}]: {taken} is already taken", "choose another name or uid")
        users[u.name] = u.uid
        if u.group is not None and u.group not in groups:
            raise RecipeError(
                f"{where}: users[{i}] ({u.name}): group {u.group!r} does not exist",
                f'declare it: [[groups]] name = "{u.group}", gid = ...',
            )
        if u.gid is not None and u.gid not in groups.values() and u.gid != u.uid:
            raise RecipeError(f"{where}: users[{i}] ({u.name}): no group has gid {u.gid}", "declare it in [[groups]]")
        if u.group is None and u.gid is None:
            groups.setdefault(u.name, u.uid)
        for extra in u.groups:
            if extra not in groups:
                raise RecipeError(
                    f"{where}: users[{i}] ({u.name}): group {extra!r} does not exist", "declare it in [[groups]]"
                )
    for i, f in enumerate(recipe.files):
        if f.owner:
            user, _, group = f.owner.partition(":")
            for kind, value, known in (("user", user, users), ("group", group, groups)):
                if value and not is_decimal(value) and value not in known:
                    raise RecipeError(
                        f"{where}: files[{i}].owner: no {kind} named {value!r}", "declare it, or give a numeric id"
                    )
    if recipe.user:
        name = recipe.user.split(":", 1)[0]
        if not is_decimal(name) and name not in users:
            raise RecipeError(f"{where}: image.user: no user named {name!r}", "declare it in [[users]], or give a uid")
