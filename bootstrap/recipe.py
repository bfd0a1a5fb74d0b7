"""Recipes: TOML files naming a distribution, a suite, a package set and image settings."""

import importlib.resources
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.distros import Distro
from bootstrap.errors import RecipeError

_REPO_RECIPES = Path(__file__).resolve().parent.parent / "recipes"

_SCHEMA: dict[str, type | dict[str, type]] = {
    "extends": str,
    "description": str,
    "distribution": str,
    "suite": str,
    "components": list,
    "packages": {"priorities": list, "essential": bool, "include": list, "exclude": list, "prefer": list},
    "filters": {"path-exclude": list, "path-include": list, "keep-directories": list},
    "image": {"tag": str, "cmd": list, "entrypoint": list, "env": list, "labels": dict},
}


@dataclass(frozen=True)
class Recipe:
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

    def as_dict(self) -> dict[str, Any]:
        """The resolved recipe, for provenance records."""
        return {
            "name": self.name,
            "description": self.description,
            "distribution": str(self.distribution),
            "suite": self.suite,
            "components": list(self.components),
            "packages": {
                "priorities": list(self.priorities),
                "essential": self.essential,
                "include": list(self.include),
                "exclude": list(self.exclude),
                "prefer": list(self.prefer),
            },
            "filters": {
                "path-exclude": list(self.path_exclude),
                "path-include": list(self.path_include),
                "keep-directories": list(self.keep_directories),
            },
            "image": {
                "tag": self.tag,
                "cmd": list(self.cmd),
                "entrypoint": list(self.entrypoint),
                "env": list(self.env),
                "labels": dict(self.labels),
            },
        }


def search_dirs() -> list[Path]:
    """Where named recipes are looked up: the checkout's recipes/, then the installed package data."""
    dirs = []
    if _REPO_RECIPES.is_dir():
        dirs.append(_REPO_RECIPES)
    try:
        packaged = Path(str(importlib.resources.files("bootstrap.recipes")))
        if packaged.is_dir() and packaged.resolve() not in [d.resolve() for d in dirs]:
            dirs.append(packaged)
    except ModuleNotFoundError:
        pass
    return dirs


def available() -> list[str]:
    """Names of every recipe found, sorted."""
    return sorted({p.stem for d in search_dirs() for p in d.glob("*.toml")})


def _locate(name: str) -> Path:
    if name.endswith(".toml") or "/" in name:
        path = Path(name)
        if not path.is_file():
            raise RecipeError(f"recipe file {name} does not exist", "give a path to a .toml recipe or a recipe name")
        return path
    for d in search_dirs():
        path = d / f"{name}.toml"
        if path.is_file():
            return path
    raise RecipeError(
        f"unknown recipe {name!r}",
        f"known recipes: {', '.join(available()) or 'none'}; `bootstrap list` shows them",
    )


def _validate(data: dict[str, Any], where: str, schema: dict[str, Any] = _SCHEMA, prefix: str = "") -> None:
    for key, value in data.items():
        expected = schema.get(key)
        if expected is None:
            raise RecipeError(f"{where}: unknown key {prefix}{key!r}", f"allowed here: {', '.join(sorted(schema))}")
        if isinstance(expected, dict):
            if not isinstance(value, dict):
                raise RecipeError(f"{where}: {prefix}{key} must be a table", f"write it as [{prefix}{key}]")
            _validate(value, where, expected, f"{prefix}{key}.")
        elif not isinstance(value, expected):
            raise RecipeError(
                f"{where}: {prefix}{key} must be a {expected.__name__}, not {type(value).__name__}",
                "see recipes/debian.toml for the format",
            )


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _load_raw(name: str, seen: tuple[str, ...]) -> tuple[dict[str, Any], Path]:
    path = _locate(name)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: invalid TOML: {exc}", "fix the recipe's syntax") from exc
    _validate(data, str(path))
    parent = data.pop("extends", None)
    if parent is None:
        return data, path
    if parent in seen:
        raise RecipeError(
            f"{path}: recipes extend each other in a loop ({' -> '.join(seen + (parent,))})",
            "remove one `extends`",
        )
    base, _ = _load_raw(parent, seen + (parent,))
    return _merge(base, data), path


def load(name: str) -> Recipe:
    """Load a recipe by name (or path), following `extends`, and check every key and value."""
    data, path = _load_raw(name, (name,))
    return from_data(data, path.stem, str(path))


def from_data(data: dict[str, Any], name: str, source: str) -> Recipe:
    """A recipe from already merged data (a recipe file, or the resolved recipe recorded in build.json)."""
    _validate({k: v for k, v in data.items() if k != "name"}, source)
    pkgs = data.get("packages", {})
    filters = data.get("filters", {})
    image = data.get("image", {})
    try:
        distro = Distro(data.get("distribution", "debian"))
    except ValueError:
        raise RecipeError(
            f"{source}: unknown distribution {data.get('distribution')!r}",
            f"supported: {', '.join(d.value for d in Distro)}",
        ) from None
    return Recipe(
        name=name,
        description=data.get("description", ""),
        distribution=distro,
        suite=data.get("suite", "stable"),
        components=tuple(data.get("components", ["main"])),
        priorities=tuple(pkgs.get("priorities", ["required"])),
        essential=pkgs.get("essential", True),
        include=tuple(pkgs.get("include", [])),
        exclude=tuple(pkgs.get("exclude", [])),
        prefer=tuple(pkgs.get("prefer", [])),
        path_exclude=tuple(filters.get("path-exclude", [])),
        path_include=tuple(filters.get("path-include", [])),
        keep_directories=tuple(filters.get("keep-directories", [])),
        tag=image.get("tag", f"{name}:{{codename}}"),
        cmd=tuple(image.get("cmd", ["bash"])),
        entrypoint=tuple(image.get("entrypoint", [])),
        env=tuple(image.get("env", ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"])),
        labels=tuple(sorted(image.get("labels", {}).items())),
        source=source,
    )
