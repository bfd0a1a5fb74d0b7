"""The recipe format as one table: every key, its type, how `extends` merges it, and what it is for.

The table drives validation (with the nearest valid key suggested), merging and the commented starting
recipe `bootstrap new` writes.
"""

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bootstrap.errors import RecipeError

Merge = str
"""`replace` (the child's value wins), `append` (lists and arrays of tables add up), `by-name`
(`NAME=value` entries of `env` merge by name), `table` (merged key by key), `own` (never inherited)."""


@dataclass(frozen=True)
class Field:
    kind: str
    """`str`, `int`, `bool`, `mode` (an octal integer or string), `list` (of `item`), `map` (string values),
    `lists` (a table of lists of strings), `table` (of `sub`), `tables` (an array of tables of `sub`)."""
    doc: str
    example: str = ""
    merge: Merge = "replace"
    item: str = "str"
    sub: Mapping[str, "Field"] = field(default_factory=dict)
    required: bool = False


def _f(kind: str, doc: str, example: str = "", **kw: Any) -> Field:
    return Field(kind, doc, example, **kw)


FILES = {
    "source": _f("str", "file or directory on this machine, relative to the recipe", '"files/app.conf"', required=True),
    "dest": _f("str", "absolute path in the image", '"/etc/app/app.conf"', required=True),
    "mode": _f("mode", "permissions of the copied file, octal, as a string", '"0640"'),
    "owner": _f("str", "`user:group`, by name (from the image) or number", '"app:app"'),
}
GROUPS = {
    "name": _f("str", "group name", '"app"', required=True),
    "gid": _f("int", "group id", "10001", required=True),
}
USERS = {
    "name": _f("str", "user name", '"app"', required=True),
    "uid": _f("int", "user id", "10001", required=True),
    "gid": _f("int", "primary group by id", "10001"),
    "group": _f("str", "primary group by name (default: a group named like the user)", '"app"'),
    "home": _f("str", "home directory, made if missing (default: /home/NAME)", '"/home/app"'),
    "shell": _f("str", "login shell (default: /bin/sh)", '"/bin/bash"'),
    "groups": _f("list", "supplementary groups", '["users"]'),
    "comment": _f("str", "the GECOS field (full name)", '"Application"'),
    "default": _f("bool", "the image's default user, left out by --no-default-user or `default-user = false`", "false"),
}
HOOKS = {
    "run": _f(
        "str",
        "shell commands run inside the image's sandbox (no network; SOURCE_DATE_EPOCH is set)",
        '"echo welcome > /etc/motd"',
        required=True,
    ),
}
REPOSITORIES = {
    "url": _f("str", "repository URL", '"https://packages.example.com/debian"', required=True),
    "suites": _f("list", "suites to use", '["stable"]', required=True),
    "components": _f("list", "components (default: main)", '["main"]'),
    "keyring": _f(
        "str",
        "the repository's signing key: a keyring file next to the recipe, or a full fingerprint of a key in "
        "the host's keyrings",
        '"example-archive-keyring.asc"',
        required=True,
    ),
}

SCHEMA: dict[str, Field] = {
    "extends": _f(
        "str",
        "a recipe to build on: a name (./recipes, ~/.config/bootstrap/recipes, bundled) or "
        "a path relative to this file",
        '"debian-slim"',
    ),
    "description": _f("str", "one line shown by `bootstrap list`", '"Our base image"'),
    "distribution": _f("str", "distribution family: debian or ubuntu", '"debian"'),
    "suite": _f("str", "suite or codename", '"stable"'),
    "components": _f("list", "archive components", '["main"]'),
    "scripts": _f(
        "bool",
        "run maintainer scripts (false: a scriptless, distroless-style build that runs nothing inside the image, "
        "needs no root, and writes what the usual scripts would leave: accounts, CA bundle, linker cache, ...)",
        "true",
    ),
    "archive": _f(
        "table",
        "what vouches for the distribution's archive (default: the host's archive keyring)",
        merge="table",
        sub={
            "keyring": _f(
                "str",
                "keyring file next to the recipe that signs the archive (--keyring overrides it)",
                '"keys/archive-keyring.asc"',
            ),
            "signers": _f(
                "list",
                "full fingerprints of the keys of that keyring that may sign the archive",
                '["0123456789ABCDEF0123456789ABCDEF01234567"]',
            ),
        },
    ),
    "default-user": _f("bool", "create the users marked `default` (--no-default-user turns it off)", "true"),
    "packages": _f(
        "table",
        "the package set",
        merge="table",
        sub={
            "priorities": _f("list", "every package of these priorities", '["required"]'),
            "essential": _f("bool", "every Essential: yes package", "true"),
            "include": _f("list", "more packages (added to what the parent includes)", '["curl"]', merge="append"),
            "exclude": _f("list", "packages never to install (added to the parent's)", "[]", merge="append"),
            "prefer": _f("list", "taken first among alternatives", "[]", merge="append"),
            "ignore-depends": _f(
                "list",
                "packages whose absence satisfies a dependency, as dpkg --ignore-depends (for a scriptless "
                "image: what only maintainer scripts use)",
                '["debconf"]',
                merge="append",
            ),
            "include-for": _f(
                "lists", "more packages for one release only, by codename", '{ noble = ["unminimize"] }', merge="table"
            ),
        },
    ),
    "filters": _f(
        "table",
        "dpkg path filters, applied while unpacking and kept in the image",
        merge="table",
        sub={
            "path-exclude": _f("list", "dpkg --path-exclude patterns", '["/usr/share/doc/*"]'),
            "path-include": _f("list", "dpkg --path-include patterns", '["/usr/share/doc/*/copyright"]'),
            "keep-directories": _f("list", "excluded directories to keep (empty)", '["/usr/share/man/man[0-9]"]'),
        },
    ),
    "repositories": _f(
        "tables", "extra apt repositories, verified like the main archive", merge="append", sub=REPOSITORIES
    ),
    "groups": _f("tables", "groups to create", merge="append", sub=GROUPS),
    "users": _f("tables", "users to create (in the image's own passwd, group and shadow)", merge="append", sub=USERS),
    "files": _f("tables", "files copied in after the packages are configured", merge="append", sub=FILES),
    "customize": _f("tables", "hooks run last, in the sandbox", merge="append", sub=HOOKS),
    "image": _f(
        "table",
        "the image configuration",
        merge="table",
        sub={
            "tag": _f(
                "str",
                "name:tag ({codename}, {suite}, {arch} are filled in; not inherited, default RECIPE:{codename})",
                '"example/base:{codename}"',
                merge="own",
            ),
            "user": _f("str", "user the container runs as", '"app"'),
            "workdir": _f("str", "working directory", '"/srv/app"'),
            "env": _f(
                "list",
                "NAME=value entries (merged by name with the parent's)",
                '["APP_ENV=production"]',
                merge="by-name",
            ),
            "cmd": _f("list", "default command", '["bash"]'),
            "entrypoint": _f("list", "entrypoint", "[]"),
            "labels": _f("map", "image labels", '{ "org.opencontainers.image.vendor" = "Example" }', merge="table"),
            "annotations": _f("map", "manifest annotations", "{}", merge="table"),
            "exposed-ports": _f("list", "ports, as 8080/tcp", '["8080/tcp"]'),
            "stop-signal": _f("str", "signal that stops the container", '"SIGTERM"'),
        },
    ),
}

_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table"}


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _unknown(key: str, allowed: Mapping[str, Field], where: str, prefix: str) -> RecipeError:
    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    hint = f"did you mean {prefix}{close[0]!r}?" if close else f"allowed here: {', '.join(sorted(allowed))}"
    return RecipeError(f"{where}: unknown key {prefix}{key!r}", hint)


def _check(value: object, spec: Field, where: str, key: str) -> None:
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
    if kind == "tables":
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise RecipeError(f"{where}: {key} must be an array of tables", f"write each entry as [[{key}]]")
        for i, entry in enumerate(value):
            validate(entry, where, spec.sub, f"{key}[{i}].")
            for name, sub in spec.sub.items():
                if sub.required and name not in entry:
                    raise RecipeError(
                        f"{where}: {key}[{i}] has no {name}", f"add {name} = {sub.example or '...'} ({sub.doc})"
                    )


def validate(data: Mapping[str, Any], where: str, schema: Mapping[str, Field] = SCHEMA, prefix: str = "") -> None:
    """Check every key and value of a recipe (or of one of its tables) against the schema."""
    for key, value in data.items():
        spec = schema.get(key)
        if spec is None:
            raise _unknown(key, schema, where, prefix)
        _check(value, spec, where, prefix + key)


def _env_name(entry: str) -> str:
    return entry.split("=", 1)[0]


def _inheritable(data: Mapping[str, Any], schema: Mapping[str, Field]) -> dict[str, Any]:
    """What a recipe passes on to those extending it: all but its `own` keys."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        spec = schema.get(key)
        if spec is not None and spec.merge == "own":
            continue
        out[key] = _inheritable(value, spec.sub) if spec is not None and spec.kind == "table" else value
    return out


def merge(base: Mapping[str, Any], over: Mapping[str, Any], schema: Mapping[str, Field] = SCHEMA) -> dict[str, Any]:
    """A recipe over the one it extends, key by key as the schema says."""
    out = _inheritable(base, schema)
    for key, value in over.items():
        spec = schema.get(key)
        rule = spec.merge if spec else "replace"
        if key not in out:
            out[key] = value
        elif rule == "table" and spec is not None and spec.kind == "table":
            out[key] = merge(out[key], value, spec.sub)
        elif rule == "table":
            out[key] = {**out[key], **value}
        elif rule == "append":
            out[key] = [*out[key], *[v for v in value if v not in out[key] or isinstance(v, dict)]]
        elif rule == "by-name":
            names = {_env_name(v) for v in value}
            out[key] = [*[v for v in out[key] if _env_name(v) not in names], *value]
        else:
            out[key] = value
    return out


def template(parent: str) -> str:
    """A commented starting recipe that extends `parent`, every key shown with what it is for."""
    lines = [
        f"# A recipe for bootstrap: everything here is added to or overrides {parent!r}.",
        "# Build it with `bootstrap build PATH`; `bootstrap show PATH` prints it merged.",
        f'extends = "{parent}"',
        '# description = "..."',
        "",
    ]
    for key, spec in SCHEMA.items():
        if spec.kind == "table":
            lines.append(f"[{key}]  # {spec.doc}")
            for name, sub in spec.sub.items():
                lines.append(f"# {name} = {sub.example or '...'}  # {sub.doc}")
            lines.append("")
        elif spec.kind == "tables":
            lines.append(f"# [[{key}]]  # {spec.doc}")
            for name, sub in spec.sub.items():
                lines.append(f"# {name} = {sub.example or '...'}  # {sub.doc}")
            lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
