"""Every recipe setting as one row of one table: its key, type, default, how `extends` merges it, and its help.

The schema check, merging, the `Recipe` values and their defaults, `Recipe.as_dict` (what `show` prints and
build.json records), `bootstrap new`'s comments and the README's key table all come from `SETTINGS`. A new
key is one row here, a typed attribute on `Recipe` (or its entry class) and the code that uses it.
"""

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from bootstrap.build.families import DISTRIBUTIONS, Distro

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class FileSpec:
    source: str
    """Absolute path on the build host."""
    dest: str
    mode: int | None = None
    owner: str | None = None


@dataclass(frozen=True)
class GroupSpec:
    name: str
    gid: int
    password: str = "!"
    """The /etc/gshadow password field (`groupadd -p`): `!`, locked, as groupadd leaves it."""


@dataclass(frozen=True)
class UserSpec:
    name: str
    uid: int
    gid: int | None = None
    group: str | None = None
    home: str = ""
    shell: str = "/bin/sh"
    groups: tuple[str, ...] = ()
    comment: str = ""
    default: bool = False
    """The image's default user (Ubuntu's `ubuntu`): left out when the recipe's `default-user` is false."""
    system: bool = False
    """A system account, as `useradd -r` makes it: no password ageing, no home directory made."""

    @property
    def home_dir(self) -> str:
        return self.home or f"/home/{self.name}"


@dataclass(frozen=True)
class Hook:
    run: str


@dataclass(frozen=True)
class Repository:
    url: str
    suites: tuple[str, ...]
    components: tuple[str, ...]
    keyring: str
    """An absolute keyring path, or a key fingerprint (40 hex digits)."""

    @property
    def is_fingerprint(self) -> bool:
        return not self.keyring.startswith("/")


MERGES = {
    "replace": "replaced",
    "append": "added to the parent's",
    "by-name": "merged by name",
    "table": "merged key by key",
    "release": "merged release by release, key by key",
    "own": "not inherited",
}
"""How `extends` merges a key: `replace` (the child's value wins), `append` (lists and arrays of tables add up),
`by-name` (`NAME=value` entries merge by name), `table` (merged key by key), `release` (each release's tables
merged key by key), `own` (never inherited)."""

KINDS = {
    "str": "string",
    "int": "integer",
    "bool": "boolean",
    "mode": "octal string",
    "list": "list of strings",
    "map": "table of strings",
    "lists": "table of lists",
    "table": "table",
    "tables": "array of tables",
    "releases": "table of tables",
}
"""`mode` is an octal integer written as a string; `lists` a table of lists of strings; `table` holds the rows
under it, `tables` (an array of tables) holds entries made of the rows under it; `releases` holds, by codename,
tables of RELEASE_TABLES."""

RELEASE_TABLES = ("packages", "filters", "rpm")
"""The tables a `[release.<codename>]` table may hold: what differs between the releases of one image (the package
set, the path filters, how an RPM tree is installed); never the distribution, suite, local files or image name."""


@dataclass(frozen=True)
class Setting:
    key: str
    """The TOML path: `suite`, `packages.include`; for a key of an array of tables' entries, `users.uid`."""
    kind: str
    help: str
    example: str = ""
    default: Any = None
    """The value when the key is absent, in the recipe format; None: no value (or, if `required`, an error); a
    callable: computed from the recipe's name."""
    merge: str = "replace"
    required: bool = False
    shown: str | Callable[[Any], bool] = "always"
    """When `as_dict` writes the key: `always`, `set` (when it differs from the default), or a test of the
    recipe. A table is written when one of its keys is."""
    read: Callable[[Any], Any] | None = None
    """Recipe format -> attribute value, when the kind's conversion is not enough (may raise ValueError)."""
    write: Callable[[Any], Any] | None = None
    """Attribute value -> recipe format, the inverse of `read`."""
    attr: str = ""
    """The attribute of `Recipe` (or of the entry class) holding it; default: the key's last part, `-` as `_`.
    `-`: none (`extends`)."""
    entry: type | None = None
    """The class of an array of tables' entries."""
    invalid: str = ""
    """The hint when `read` refuses a value."""
    sub: Mapping[str, "Setting"] = field(default_factory=dict)
    """The rows under a table or an array of tables (filled in from the flat table)."""
    family: str = ""
    """The one package family that reads the key (`deb`, `rpm`; empty: every family). A recipe of another family
    may not set it, and its records leave it out."""

    @property
    def name(self) -> str:
        return self.key.rsplit(".", 1)[-1]

    @property
    def attribute(self) -> str:
        return self.attr or self.name.replace("-", "_")


def _mode(value: int | str | None) -> int | None:
    if value is None:
        return None
    return int(value, 8) if isinstance(value, str) else value


def _octal(mode: int | None) -> str | None:
    return None if mode is None else f"{mode:04o}"


def _fingerprints(values: list[str]) -> tuple[str, ...]:
    return tuple(s.replace(" ", "").upper() for s in values)


def _releases(value: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Codename -> its tables as canonical JSON text (a frozen recipe holds no dicts)."""
    return tuple(sorted((codename, json.dumps(tables, sort_keys=True)) for codename, tables in value.items()))


def _release_tables(value: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    return {codename: json.loads(tables) for codename, tables in value}


def _any_default_user(recipe: Any) -> bool:
    return any(u.default for u in recipe.users)


S = Setting
SETTINGS: tuple[Setting, ...] = (
    S("extends", "str", "a recipe to build on: a name (looked up in ./recipes, ~/.config/bootstrap/recipes, then "
      "the bundled recipes) or a path relative to this file", '"debian-slim"', attr="-"),
    S("description", "str", "one line shown by `bootstrap list`", '"Our base image"', default=""),
    S("distribution", "str", "the distribution: debian, ubuntu, centos-stream, almalinux, rockylinux or fedora",
      '"debian"', default="debian", read=Distro,
      write=str, invalid=f"supported: {', '.join(d.value for d in Distro)}"),
    S("suite", "str", "suite or codename (`--suite` overrides it)", '"stable"', default="stable"),
    S("release", "releases", "settings for one release only: `[release.<codename>.packages]`, `.filters` and "
      "`.rpm` tables, merged over the recipe's as `extends` merges a child's when that release is built (the suite "
      "as the build names it, an alias such as `lts` or `latest` resolved); a recipe's own settings win over its "
      "parent's tables",
      '{ "10" = { packages = { include = ["tzdata"] } } }', default={}, merge="release", shown="set",
      read=_releases, write=_release_tables, attr="releases"),
    S("components", "list", "archive components", '["main"]', default=["main"]),
    S("packages", "table", "the package set", merge="table"),
    S("packages.priorities", "list", "every package of these priorities", '["required"]', default=["required"]),
    S("packages.essential", "bool", "every `Essential: yes` package", "true", default=True),
    S("packages.include", "list", "packages added to what the parent selects (a virtual package takes its "
      "provider, as `apt-get install` does)", '["curl"]', default=[], merge="append"),
    S("packages.exclude", "list", "packages kept out of what the parent selects", "[]", default=[], merge="append"),
    S("packages.prefer", "list", "packages taken first among alternatives", "[]", default=[], merge="append"),
    S("packages.ignore-depends", "list", "packages whose absence satisfies a dependency, as "
      "`dpkg --ignore-depends` (a scriptless image needs no debconf)", '["debconf"]', default=[], merge="append",
      shown="set"),
    S("packages.groups", "list", "comps groups added to the request, as `dnf install @group` (RPM "
      "distributions)", '["core"]', default=[], merge="append", shown="set", attr="package_groups"),
    S("filters", "table", "dpkg path filters, applied while unpacking and kept in the image", merge="table"),
    S("filters.path-exclude", "list", "`dpkg --path-exclude` patterns", '["/usr/share/doc/*"]', default=[]),
    S("filters.path-include", "list", "`dpkg --path-include` patterns", '["/usr/share/doc/*/copyright"]',
      default=[]),
    S("filters.keep-directories", "list", "excluded directories to keep (empty)", '["/usr/share/man/man[0-9]"]',
      default=[]),
    S("rpm", "table", "how an RPM distribution's tree is installed (centos-stream, almalinux, rockylinux, "
      "fedora)", merge="table"),
    S("rpm.mirror", "str", "the root of the distribution's tree (`--mirror` and `$BOOTSTRAP_<DISTRO>_MIRROR` "
      "come first)", '"https://mirror.example/almalinux"', default="", shown="set", attr="rpm_mirror"),
    S("rpm.metalink", "str", "the distribution's metalink service, where its repository files name one (Fedora, "
      "CentOS Stream; `$BOOTSTRAP_<DISTRO>_METALINK` comes first): each repository's repomd.xml must match the size "
      "and digest it gives, the image's repository files name it as the official ones do, and with no mirror given "
      "the mirrors its metalinks list serve the repositories",
      '"https://metalink.example/metalink"', default="", shown="set", attr="rpm_metalink"),
    S("rpm.repos", "list", "the repository ids the build reads (default: those the release enables)",
      '["baseos", "appstream"]', default=[], shown="set", attr="rpm_repos"),
    S("rpm.install-langs", "list", "rpm's `%_install_langs`: the languages whose files are installed (empty: "
      "all), as kickstart's `--inst-langs`", '["en_US"]', default=[], shown="set"),
    S("rpm.nodocs", "bool", "leave out files marked as documentation (`tsflags=nodocs`, `--excludedocs`)",
      "false", default=True, shown="set"),
    S("rpm.weak-deps", "bool", "install weak dependencies (dnf's `install_weak_deps`)", "true", default=False,
      shown="set"),
    S("rpm.write", "map", "files the official build's `%post` writes (path in the image: content)",
      '{ "/etc/locale.conf" = "LANG=C.UTF-8\\n" }', default={}, merge="table", shown="set", attr="rpm_write"),
    S("rpm.remove", "list", "paths the official build's `%post` removes, as shell globs (`*` matches no leading "
      "`.`); a pattern ending in `/` matches directories only (`find -type d`), and `!PATTERN` keeps what it matches "
      "of the others' matches, as they name it (`find ... -not -name`)",
      '["/var/log/*", "/usr/share/locale/*/", "!/usr/share/locale/en_US"]', default=[], merge="append", shown="set",
      attr="rpm_remove"),
    S("rpm.moves", "map", "files the official build moves (`mv EXISTING PATH`; path in the image: the existing "
      "file), before anything is removed; a move `mv` fails at (nothing to move) is passed over, as the build's is",
      '{ "/etc/localtime" = "/usr/share/zoneinfo/UTC" }', default={},
      merge="table", shown="set", attr="rpm_moves"),
    S("rpm.links", "map", "symbolic links the official build makes after the install (path in the image: target), "
      "as `ln -s`, `systemctl set-default` and `systemctl mask` do",
      '{ "/etc/localtime" = "../usr/share/zoneinfo/UTC" }', default={}, merge="table", shown="set", attr="rpm_links"),
    S("rpm.append", "map", "text the official build's `%post` appends to a file (path in the image: text), as "
      "`echo ... >> file`", '{ "/etc/dnf/dnf.conf" = "tsflags=nodocs\\n" }', default={}, merge="table", shown="set",
      attr="rpm_append"),
    S("rpm.dates", "map", "files the official build writes its build date into, as `date +FORMAT > FILE` (path in "
      "the image: strftime format); the date is the image's epoch, so the bytes stay reproducible",
      '{ "/etc/BUILDTIME" = "%Y%m%d_%H%M" }', default={}, merge="table", shown="set", attr="rpm_dates"),
    S("rpm.hardlinks", "map", "hard links the official build makes (`ln EXISTING PATH`; path in the image: the "
      "existing file)", '{ "/usr/sbin/sln" = "/usr/bin/ln" }', default={}, merge="table", shown="set",
      attr="rpm_hardlinks"),
    S("rpm.mask", "list", "systemd units the official build's `%post` masks (`systemctl mask`: a link to /dev/null "
      "in /etc/systemd/system), made only when the image has systemctl, as that command is", '["getty.target"]',
      default=[], merge="append", shown="set", attr="rpm_mask"),
    S("rpm.dirs", "list", "directories the official build makes (`mkdir -p`: 0755, owned by root; existing ones "
      "kept)", '["/run/lock"]', default=[], merge="append", shown="set", attr="rpm_dirs"),
    S("rpm.modes", "map", "modes the official build sets (`chmod`; path in the image: octal mode), after the "
      "files are written and the directories made", '{ "/var/lib/private" = "0700" }', default={}, merge="table",
      shown="set", attr="rpm_modes"),
    S("rpm.tmpfiles", "list", "the image's tmpfiles.d files applied as `systemd-tmpfiles --create` does (`[\"*\"]`: "
      "all of them, as when none is named)", '["/usr/lib/tmpfiles.d/rootfiles.conf"]', default=[], shown="set",
      attr="rpm_tmpfiles"),
    S("rpm.tmpfiles-boot", "bool", "with `rpm.tmpfiles`, also the lines marked for boot (`--boot`)", "true",
      default=False, shown="set"),
    S("rpm.tmpfiles-in-image", "bool", "with `rpm.tmpfiles`, the official build runs the image's own "
      "systemd-tmpfiles (a kickstart's `%post`, chrooted): nothing is applied when the image has none, as that "
      "command is not found (false: the build host's, as `systemd-tmpfiles --root`)", "true", default=False,
      shown="set"),
    S("rpm.import-key", "bool", "the release's key (the `gpgkey` of its repository files, read from the image) "
      "imported into the rpm database after the packages, as `rpm --import` does (and dnf, checking the first "
      "package); `rpm -q gpg-pubkey` lists it", "true", default=False, shown="set"),
    S("image", "table", "the image configuration", merge="table"),
    S("image.tag", "str", "name:tag (`{codename}`, `{suite}`, `{arch}` are filled in); never inherited, "
      "default `RECIPE:{codename}`", '"example/base:{codename}"', default=lambda name: f"{name}:{{codename}}",
      merge="own"),
    S("image.cmd", "list", "default command", '["bash"]', default=["bash"]),
    S("image.entrypoint", "list", "entrypoint", "[]", default=[]),
    S("image.env", "list", "`NAME=value` entries, merged by name with the parent's", '["APP_ENV=production"]',
      default=[DEFAULT_PATH], merge="by-name"),
    S("image.labels", "map", "image labels", '{ "org.opencontainers.image.vendor" = "Example" }', default={},
      merge="table"),
    S("image.user", "str", "user the container runs as", '"app"', default="", shown="set"),
    S("image.workdir", "str", "working directory", '"/srv/app"', default="", shown="set"),
    S("image.annotations", "map", "manifest annotations", "{}", default={}, merge="table", shown="set"),
    S("image.exposed-ports", "list", "ports, as `8080/tcp`", '["8080/tcp"]', default=[], shown="set"),
    S("image.stop-signal", "str", "signal that stops the container", '"SIGTERM"', default="", shown="set"),
    S("scripts", "bool", "`false`: a scriptless, distroless-style build that runs nothing inside the image, "
      "needs no root, and writes what the usual scripts would leave (accounts, CA bundle, linker cache, ...); "
      "`customize` hooks need scripts", "true", default=True, shown="set"),
    S("archive", "table", "what vouches for the distribution's archive (default: the host's archive keyring); "
      "`--keyring` replaces both keys", merge="table"),
    S("archive.keyring", "str", "keyring file next to the recipe that signs the archive",
      '"keys/archive-keyring.asc"', default="", shown="set", attr="archive_keyring"),
    S("archive.signers", "list", "full fingerprints of the keys of that keyring that may sign the archive",
      '["0123456789ABCDEF0123456789ABCDEF01234567"]', default=[], shown="set", attr="archive_signers",
      read=_fingerprints),
    S("default-user", "bool", "`false` leaves out the users marked `default = true` (as `--no-default-user` "
      "does)", "true", default=True, shown=_any_default_user),
    S("repositories", "tables", "an extra apt repository, verified like the main archive", default=[],
      merge="append", shown="set", entry=Repository),
    S("repositories.url", "str", "repository URL", '"https://packages.example.com/debian"', required=True,
      read=lambda url: url.rstrip("/")),
    S("repositories.suites", "list", "suites to use", '["stable"]', required=True),
    S("repositories.components", "list", "components", '["main"]', default=["main"]),
    S("repositories.keyring", "str", "the repository's signing key: a keyring file next to the recipe, or a "
      "full fingerprint of a key in the host's keyrings",
      '"example-archive-keyring.asc"', required=True),
    S("groups", "tables", "a group, written into the image's own `/etc/group` and `/etc/gshadow`", default=[],
      merge="append", shown="set", entry=GroupSpec),
    S("groups.name", "str", "group name", '"app"', required=True),
    S("groups.gid", "int", "group id", "10001", required=True),
    S("groups.password", "str", "the `/etc/gshadow` password field, as `groupadd -p` sets it", '"!*"', default="!",
      shown="set"),
    S("users", "tables", "a user, written into `/etc/passwd` and `/etc/shadow` as `useradd` would (locked "
      "password, the image's `login.defs` ageing, a home made from `/etc/skel` with its `HOME_MODE`)",
      default=[], merge="append", shown="set", entry=UserSpec),
    S("users.name", "str", "user name", '"app"', required=True),
    S("users.uid", "int", "user id", "10001", required=True),
    S("users.gid", "int", "primary group by id", "10001", shown="set"),
    S("users.group", "str", "primary group by name (default: a group named like the user)", '"app"', shown="set"),
    S("users.home", "str", "home directory, made if missing (default: /home/NAME)", '"/home/app"', default="",
      shown="set"),
    S("users.shell", "str", "login shell", '"/bin/bash"', default="/bin/sh"),
    S("users.groups", "list", "supplementary groups", '["users"]', default=[]),
    S("users.comment", "str", "the GECOS field (full name)", '"Application"', default="", shown="set"),
    S("users.default", "bool", "the image's default user, left out by `--no-default-user` or "
      "`default-user = false`", "false", default=False, shown="set"),
    S("users.system", "bool", "a system account, as `useradd -r` makes it: no password ageing in `/etc/shadow`, "
      "no home directory made", "true", default=False, shown="set"),
    S("files", "tables", "a file or directory copied in after the packages are configured", default=[],
      merge="append", shown="set", entry=FileSpec),
    S("files.source", "str", "file or directory on this machine, relative to the recipe", '"files/app.conf"',
      required=True),
    S("files.dest", "str", "absolute path in the image", '"/etc/app/app.conf"', required=True),
    S("files.mode", "mode", "permissions, octal, as a string", '"0640"', shown="set", read=_mode, write=_octal),
    S("files.owner", "str", "`user:group`, by name (from the image) or number", '"app:app"', shown="set"),
    S("customize", "tables", "a hook run last, inside the image's sandbox (no network, services blocked, "
      "`SOURCE_DATE_EPOCH` set); a failing hook fails the build", default=[], merge="append", shown="set",
      entry=Hook),
    S("customize.run", "str", "shell commands run inside the image's sandbox (no network; SOURCE_DATE_EPOCH is "
      "set)", '"echo welcome > /etc/motd"', required=True),
)  # fmt: skip


FAMILY_KEYS = {
    "deb": ("components", "packages.priorities", "packages.essential", "packages.prefer", "packages.ignore-depends",
            "filters", "repositories"),
    "rpm": ("packages.groups", "rpm"),
}  # fmt: skip
"""The keys (with the rows under them) that one package family alone reads."""


def _family_of(key: str) -> str:
    parts = key.split(".")
    return next((f for f, keys in FAMILY_KEYS.items() for k in keys if parts[: k.count(".") + 1] == k.split(".")), "")


SETTINGS = tuple(replace(row, family=_family_of(row.key)) for row in SETTINGS)


def family_of(recipe: Any) -> str:
    """The package family building a recipe (`deb`, `rpm`)."""
    return DISTRIBUTIONS[recipe.distribution]


def foreign_keys(recipe: Any) -> list[str]:
    """The keys a recipe sets that its family does not read (each a row of another family, not at its default)."""
    family = family_of(recipe)
    out = []
    for row in SETTINGS:
        entry_key = "." in row.key and SCHEMA[row.key.split(".")[0]].kind == "tables"
        if row.family in ("", family) or row.kind == "table" or entry_key:
            continue
        if _shown(replace(row, shown="set"), getattr(recipe, row.attribute), recipe):
            out.append(row.key)
    return out


def _tree(rows: tuple[Setting, ...], prefix: str = "") -> dict[str, Setting]:
    """The rows directly under `prefix` (a table's or array's key and a dot), each with its own rows under it."""
    out: dict[str, Setting] = {}
    for row in rows:
        rest = row.key.removeprefix(prefix)
        if row.key.startswith(prefix) and "." not in rest:
            out[rest] = replace(row, sub=_tree(rows, row.key + ".")) if row.kind in ("table", "tables") else row
    return out


SCHEMA: dict[str, Setting] = _tree(SETTINGS)
"""The table as the recipe nests it: top-level keys, each table's and array of tables' rows in `sub`."""


class InvalidValue(ValueError):
    """A value the row's `read` refused (an unknown distribution)."""

    def __init__(self, row: Setting, value: Any) -> None:
        super().__init__(row.key)
        self.row = row
        self.value = value


def _lookup(data: Mapping[str, Any], row: Setting, name: str) -> Any:
    if row.name in data:
        return data[row.name]
    if callable(row.default):
        return row.default(name)
    return row.default


def _read(row: Setting, value: Any) -> Any:
    """A value in the recipe format as the attribute holds it."""
    if value is None:
        return None
    if row.read is not None:
        return row.read(value)
    if row.kind == "list":
        return tuple(value)
    if row.kind == "map":
        return tuple(sorted(value.items()))
    if row.kind == "lists":
        return tuple(sorted((k, tuple(v)) for k, v in value.items()))
    if row.kind == "tables":
        assert row.entry is not None
        return tuple(row.entry(**values(entry, row.sub, "")) for entry in value)
    return value


def values(data: Mapping[str, Any], schema: Mapping[str, Setting] = SCHEMA, name: str = "") -> dict[str, Any]:
    """The attribute values of validated, merged recipe data (or of one entry): every key's, its default when
    absent. InvalidValue: a row's `read` refused a value."""
    out: dict[str, Any] = {}
    for row in schema.values():
        if row.attribute == "-":
            continue
        if row.kind == "table":
            out |= values(data.get(row.name, {}), row.sub, name)
            continue
        value = _lookup(data, row, name)
        try:
            out[row.attribute] = _read(row, value)
        except ValueError as exc:
            raise InvalidValue(row, value) from exc
    return out


def _write(row: Setting, value: Any) -> Any:
    """An attribute's value in the recipe format."""
    if row.write is not None:
        return row.write(value)
    if isinstance(value, tuple) and row.kind == "tables":
        return [record(entry, row.sub, entry) for entry in value]
    if row.kind == "list":
        return list(value)
    if row.kind == "map":
        return dict(value)
    if row.kind == "lists":
        return {k: list(v) for k, v in value}
    return value


def _shown(row: Setting, value: Any, whole: Any) -> bool:
    if callable(row.shown):
        return row.shown(whole)
    if row.shown == "set":
        default = None if callable(row.default) else _read(row, row.default)
        return bool(value != default)
    return True


def record(obj: Any, schema: Mapping[str, Setting] = SCHEMA, whole: Any = None) -> dict[str, Any]:
    """A recipe's (or an entry's) attributes in the recipe format, in the table's order, each key written when
    its row says: the inverse of `values` (what `show` prints and build.json records)."""
    out: dict[str, Any] = {}
    top = whole if whole is not None else obj
    family = family_of(top) if hasattr(top, "distribution") else ""
    for row in schema.values():
        if row.attribute == "-" or (family and row.family not in ("", family)):
            continue
        if row.kind == "table":
            sub = record(obj, row.sub, whole)
            if sub:
                out[row.name] = sub
            continue
        value = getattr(obj, row.attribute)
        if _shown(row, value, whole if whole is not None else obj):
            out[row.name] = _write(row, value)
    return out


def attributes(schema: Mapping[str, Setting] = SCHEMA) -> list[str]:
    """The attributes the rows fill (of `Recipe`, or of an entry class)."""
    out: list[str] = []
    for row in schema.values():
        if row.kind == "table":
            out += attributes(row.sub)
        elif row.attribute != "-":
            out.append(row.attribute)
    return out
