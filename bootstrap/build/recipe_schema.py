"""What the table of recipe settings (bootstrap/build/settings.py) drives here: validation (with the nearest valid
key suggested), merging along `extends`, the commented starting recipe `bootstrap new` writes, and the README's
key table.
"""

import difflib
import json
from collections.abc import Mapping
from typing import Any

from bootstrap.build.settings import KINDS, MERGES, RELEASE_TABLES, SCHEMA, SETTINGS, Setting
from bootstrap.errors import RecipeError

RELEASE_SCHEMA = {name: SCHEMA[name] for name in RELEASE_TABLES}
"""What a `[release.<codename>]` table may hold."""
RETIRED = {
    "include-for": 'write [release."<codename>".packages] with include = [...]',
    "exclude-for": 'write [release."<codename>".packages] with exclude = [...]',
}
"""Keys an earlier bootstrap read, and what says the same now."""

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table"}


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _unknown(key: str, allowed: Mapping[str, Setting], where: str, prefix: str) -> RecipeError:
    if key in RETIRED:
        return RecipeError(f"{where}: {prefix}{key} is no longer read", RETIRED[key])
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    hint = f"did you mean {prefix}{close[0]!r}?" if close else f"allowed here: {', '.join(sorted(allowed))}"
    return RecipeError(f"{where}: unknown key {prefix}{key!r}", hint)


def _check(value: object, spec: Setting, where: str, key: str) -> None:
    def wrong(expected: str, example: str = spec.example) -> RecipeError:
        return RecipeError(
            f"{where}: {key} must be {expected}, not {_type_name(value)}",
            f"for example: {key.rsplit('.', 1)[-1].split('[')[0]} = {example}" if example else "see `bootstrap new`",
        )

    kind = spec.kind
    if kind == "str" and not isinstance(value, str):
        raise wrong("a string")
    if kind == "int" and (not isinstance(value, int) or isinstance(value, bool)):
        raise wrong("an integer")
    if kind == "bool" and not isinstance(value, bool):
        raise wrong("true or false")
    if kind == "mode" and not (isinstance(value, str) and 3 <= len(value) <= 4 and all(c in "01234567" for c in value)):
        # A bare integer is refused: TOML reads `mode = 644` as decimal (0o1204), and 0o644 as 420.
        raise wrong('an octal mode written as a string, such as "0640"')
    if kind == "list" and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        raise wrong("a list of strings")
    if kind == "map" and (not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())):
        raise wrong("a table of strings")
    if kind == "lists" and (
        not isinstance(value, dict)
        or not all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values())
    ):
        raise wrong("a table of lists of strings")
    if kind == "table":
        if not isinstance(value, dict):
            raise RecipeError(f"{where}: {key} must be a table", f"write it as [{key}]")
        validate(value, where, spec.sub, key + ".")
    if kind == "releases":
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise RecipeError(
                f"{where}: {key} must be a table of tables, by codename", f'write them as [{key}."<codename>".packages]'
            )
        for codename, tables in value.items():
            validate(tables, where, RELEASE_SCHEMA, f"{key}.{codename}.")
    if kind == "tables":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise RecipeError(f"{where}: {key} must be an array of tables", f"write each entry as [[{key}]]")
        for i, entry in enumerate(value):
            validate(entry, where, spec.sub, f"{key}[{i}].")
            for name, sub in spec.sub.items():
                if sub.required and name not in entry:
                    raise RecipeError(
                        f"{where}: {key}[{i}] has no {name}", f"add {name} = {sub.example or '...'} ({sub.help})"
                    )


def validate(data: Mapping[str, Any], where: str, schema: Mapping[str, Setting] = SCHEMA, prefix: str = "") -> None:
    """Check every key and value of a recipe (or of one of its tables) against the schema."""
    for key, value in data.items():
        spec = schema.get(key)
        if spec is None:
            raise _unknown(key, schema, where, prefix)
        _check(value, spec, where, prefix + key)


def _env_name(entry: str) -> str:
    return entry.split("=", 1)[0]


def _inheritable(data: Mapping[str, Any], schema: Mapping[str, Setting]) -> dict[str, Any]:
    """What a recipe passes on to those extending it: all but its `own` keys."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        spec = schema.get(key)
        if spec is not None and spec.merge == "own":
            continue
        out[key] = _inheritable(value, spec.sub) if spec is not None and spec.kind == "table" else value
    return out


def _shadowed(releases: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """A parent's release tables less what the recipe extending it sets itself: its own value wins over its
    parent's for one release as for all (a list that adds up keeps both; a table loses the keys it sets)."""
    out: dict[str, Any] = {}
    for codename, tables in releases.items():
        kept: dict[str, Any] = {}
        for name, table in tables.items():
            mine, rows = over.get(name, {}), SCHEMA[name].sub
            left: dict[str, Any] = {}
            for key, value in table.items():
                rule = rows[key].merge if key in rows else "replace"
                if key not in mine or rule == "append":
                    left[key] = value
                elif rule == "table" and {k: v for k, v in value.items() if k not in mine[key]}:
                    left[key] = {k: v for k, v in value.items() if k not in mine[key]}
            if left:
                kept[name] = left
        if kept:
            out[codename] = kept
    return out


def merge(base: Mapping[str, Any], over: Mapping[str, Any], schema: Mapping[str, Setting] = SCHEMA) -> dict[str, Any]:
    """A recipe over the one it extends, key by key as the schema says."""
    out = _inheritable(base, schema)
    if "release" in out and schema is SCHEMA:
        out["release"] = _shadowed(out["release"], over)
    for key, value in over.items():
        spec = schema.get(key)
        rule = spec.merge if spec else "replace"
        if key not in out:
            out[key] = value
        elif rule == "table" and spec is not None and spec.kind == "table":
            out[key] = merge(out[key], value, spec.sub)
        elif rule == "table":
            out[key] = {**out[key], **value}
        elif rule == "release":
            out[key] = {**out[key], **{c: merge(out[key].get(c, {}), tables) for c, tables in value.items()}}
        elif rule == "append":
            out[key] = [*out[key], *[v for v in value if v not in out[key] or isinstance(v, dict)]]
        elif rule == "by-name":
            names = {_env_name(v) for v in value}
            out[key] = [*[v for v in out[key] if _env_name(v) not in names], *value]
        else:
            out[key] = value
    return out


def template(parent: str, family: str = "") -> str:
    """A commented starting recipe that extends `parent`, every key shown with an example and what it is for (with
    `family`, only the keys that family reads)."""
    lines = [
        f"# A recipe for bootstrap: everything here is added to or overrides {parent!r}.",
        "# Build it with `bootstrap build PATH`; `bootstrap show PATH` prints it merged.",
        f'extends = "{parent}"',
    ]

    def read(spec: Setting) -> bool:
        return not family or spec.family in ("", family)

    for key, spec in SCHEMA.items():
        if spec.kind not in ("table", "tables") and key != "extends" and read(spec):
            lines.append(f"# {key} = {spec.example or '...'}  # {spec.help}")
    lines.append("")
    for key, spec in SCHEMA.items():
        if spec.kind in ("table", "tables") and read(spec):
            lines.append(f"[{key}]  # {spec.help}" if spec.kind == "table" else f"# [[{key}]]  # {spec.help}")
            for name, sub in spec.sub.items():
                if read(sub):
                    lines.append(f"# {name} = {sub.example or '...'}  # {sub.help}")
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _toml(value: Any) -> str:
    if callable(value):
        return str(value("RECIPE"))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{}" if not value else "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(value)


def _readme_key(row: Setting) -> str:
    parent, _, name = row.key.rpartition(".")
    if not parent:
        return f"`{row.key}`" if row.kind not in ("table", "tables") else f"`{_header(row.key)}`"
    return f"`{_header(parent)}` `{name}`"


def _header(key: str) -> str:
    return f"[[{key}]]" if SCHEMA[key].kind == "tables" else f"[{key}]"


def readme_table() -> str:
    """The README's list of recipe keys, in Markdown: one line per row of the table."""
    lines = ["| key | type | default | with `extends` | what |", "|---|---|---|---|---|"]
    for row in SETTINGS:
        if row.required:
            default = "required"
        elif row.default is None or row.kind in ("table", "tables"):
            default = ""
        else:
            default = f"`{_toml(row.default)}`"
        merge = "" if "." in row.key and SCHEMA[row.key.split(".")[0]].kind == "tables" else MERGES[row.merge]
        only = {"deb": "(Debian and Ubuntu only) ", "rpm": "(RPM distributions only) "}.get(row.family, "")
        lines.append(f"| {_readme_key(row)} | {KINDS[row.kind]} | {default} | {merge} | {only}{row.help} |")
    return "\n".join(lines) + "\n"
