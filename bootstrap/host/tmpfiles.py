"""`systemd-tmpfiles --create [--boot]` done from the host on an image's tree, as a build's `%post` runs it.

The configuration is the tree's own (tmpfiles.d(5)): the files named, or every `*.conf` of /etc/tmpfiles.d,
/run/tmpfiles.d, /usr/local/lib/tmpfiles.d and /usr/lib/tmpfiles.d, a name in an earlier directory hiding the
same name in a later one, read in the order of their names. A path's first line wins over a later one that
would also make it; items run parents first. Owners are looked up in the tree's own /etc/passwd and /etc/group.

What creation does is done: directories (d D v q Q), files (f F w), symbolic links (L), copies (C), named
pipes (p), and modes and owners of what exists (e z Z). Cleaning (x X r R, ages) belongs to `--clean` and
`--remove`. Device nodes (c b) are never made in a tree, and attributes, extended attributes and ACLs (h H t T
a A) are not recorded in an image layer: those lines are said and passed over. So is a line whose specifiers
name the build host (its machine id, boot id, host name, kernel), which would make the image depend on where
it was built. As with systemd-tmpfiles, a line that cannot be applied is a warning and the others go on.
"""

import base64
import binascii
import dataclasses
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bootstrap.errors import BootstrapError
from bootstrap.host.tree import Tree, TreeError, account_ids, plain_id
from bootstrap.log import log

CONFIG_DIRS = ("etc/tmpfiles.d", "run/tmpfiles.d", "usr/local/lib/tmpfiles.d", "usr/lib/tmpfiles.d")
ALL = "*"
"""In a list of configuration files: every one of the tree's, as systemd-tmpfiles reads them when none is named."""
FACTORY = "/usr/share/factory"
MAKES = frozenset("fFwdDvqQpLCcb")
"""Types that make (own) their path: a second such line for the same path is a duplicate."""
GLOBS = frozenset("ewzZxXrRtThHaA")
NOT_RECORDED = {
    "c": "device nodes",
    "b": "device nodes",
    "h": "file attributes",
    "H": "file attributes",
    "t": "extended attributes",
    "T": "extended attributes",
    "a": "ACLs",
    "A": "ACLs",
}
CLEANING = frozenset("xXrR")
DEFAULT_MODES = {"d": 0o755, "D": 0o755, "v": 0o755, "q": 0o755, "Q": 0o755, "f": 0o644, "F": 0o644, "p": 0o644}
SPECIFIERS = {
    "%": "%",
    "h": "/root",
    "u": "root",
    "U": "0",
    "g": "root",
    "G": "0",
    "t": "/run",
    "S": "/var/lib",
    "C": "/var/cache",
    "L": "/var/log",
    "E": "/etc",
    "T": "/tmp",
    "V": "/var/tmp",
}
"""The specifiers of a system instance whose values are the same on every machine."""
_ESCAPES = re.compile(
    r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})|([0-7]{3})|([abfnrtvs\\\"']))|(\\.?)", re.DOTALL
)
"""systemd's C escapes (cunescape): exactly two hex or three octal digits for a byte, four or eight hex for a
character, the simple ones; anything else (`\\q`, `\\7`) fails the line."""
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v", "s": " ", "\\": "\\"}
_SIMPLE |= {'"': '"', "'": "'"}


class Skip(Exception):
    """This line cannot be applied (said as a warning; the others go on)."""


class Left(Skip):
    """This line is left out by design (a device node, an ACL, the build host's identity): counted and said once,
    each line only with -v."""


HOST_SPECIFIERS = frozenset("aAbBHlmMoqvwW")
"""Specifiers whose values are the build host's or the running system's identity (machine id, boot id, host name,
kernel, architecture, OS release fields): a line naming one is left out."""


@dataclass(frozen=True)
class Item:
    kind: str
    """The type letter."""
    path: str
    mode: int | None
    masked: bool
    user: str | None
    group: str | None
    argument: str | None
    plus: bool
    where: str
    """file:line, for messages."""
    mode_on_create: bool = False
    """`:` before the mode: set only on what the line creates."""
    owner_on_create: bool = False
    """`:` before the user or group: set only on what the line creates."""


def _byte(value: int) -> str:
    """One byte as a character that encodes back to that byte (utf-8 with surrogateescape)."""
    return chr(value) if value < 0x80 else chr(0xDC00 + value)


def _unescape(text: str) -> str:
    """`text` with its C escapes undone as systemd undoes them; Skip for one it refuses (a NUL included)."""

    def one(m: re.Match[str]) -> str:
        hexa, short, long, octal, simple, bad = m.groups()
        if bad is not None:
            raise Skip(f"unknown escape {bad!r}")
        if simple is not None:
            return _SIMPLE[simple]
        value = int(hexa, 16) if hexa else int(octal, 8) if octal else int(short or long, 16)
        if value == 0 or ((hexa or octal) and value > 0xFF):
            raise Skip(f"escape {m[0]!r} is not a byte systemd takes")
        if hexa or octal:
            return _byte(value)
        if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
            raise Skip(f"escape {m[0]!r} is not a character")
        return chr(value)

    return _ESCAPES.sub(one, text)


def _specifiers(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        if m[1] in HOST_SPECIFIERS:
            raise Left(f"specifier %{m[1]} names the build host")
        if m[1] not in SPECIFIERS:
            raise Skip(f"unknown specifier %{m[1]}")
        return SPECIFIERS[m[1]]

    return re.sub(r"%(.)", one, text)


def _fields(line: str) -> tuple[list[str], str]:
    """The first six fields (quotes removed, C escapes such as `\\x20` undone) and the rest of the line (the
    argument)."""
    out: list[str] = []
    rest = line.strip()
    while len(out) < 6 and rest:
        m = re.match(r'"((?:[^"\\]|\\.)*)"|\'([^\']*)\'|(\S+)', rest)
        if m is None:
            raise Skip("unbalanced quotes")
        word = m[1] if m[1] is not None else m[2] if m[2] is not None else m[3]
        out.append(_unescape(word))  # C escapes, quoted or not, as systemd unescapes each field
        rest = rest[m.end() :].lstrip()
    return out, rest


def parse(text: str, name: str, boot: bool, left: list[str] | None = None) -> Iterator[Item]:
    """The lines of one configuration file that `--create` (with `--boot`, also `!` lines) acts on."""
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{name}:{number}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            item = _item(line, where, boot)
        except Skip as why:
            _say(where, why, left)
            continue
        if item is not None:
            yield item


def _item(line: str, where: str, boot: bool) -> Item | None:
    if "\0" in line:
        raise Skip("a NUL byte in the line")
    fields, rest = _fields(line)
    if any("\0" in f for f in fields):
        raise Skip("a NUL byte in a field")
    if len(fields) < 2 or not fields[0]:
        raise Skip("no type and path")
    action, path = fields[0], fields[1]
    mode_s, user, group = (fields[2:5] + ["-"] * 3)[:3]
    kind, modifiers = action[0], action[1:]
    if kind not in MAKES | GLOBS or set(modifiers) - set("+!-=~^"):
        raise Skip(f"unknown type {action!r}")
    if "!" in modifiers and not boot:
        return None
    if "^" in modifiers:
        raise Left("credentials are not read in a build")
    argument = None if rest in ("", "-") else rest
    if argument is not None and "~" in modifiers:
        try:
            argument = base64.b64decode(argument, validate=True).decode("utf-8", "surrogateescape")
        except binascii.Error as exc:
            raise Skip("the argument is not base64") from exc
    path = _specifiers(path)
    if not path.startswith("/"):
        raise Skip(f"path {path!r} is not absolute")
    if argument is not None:
        argument = _specifiers(argument)
        if kind in "fFw":
            argument = _unescape(argument)
        if "\0" in argument:
            raise Skip("a NUL byte in the argument")
    mode_on_create = mode_s.startswith(":")
    masked = mode_s.lstrip(":").startswith("~")
    mode_s = mode_s.lstrip("~:")
    mode = None
    if mode_s not in ("", "-"):
        if not re.fullmatch(r"[0-7]{1,4}", mode_s):
            raise Skip(f"mode {mode_s!r} is not octal")
        mode = int(mode_s, 8)
    norm = "/" + "/".join(p for p in path.split("/") if p not in ("", "."))
    if "/../" in f"{norm}/":
        raise Skip(f"path {path!r} climbs with ..")
    owner_on_create = user.startswith(":") or group.startswith(":")
    plus = "+" in modifiers
    return Item(kind, norm, mode, masked, _id(user), _id(group), argument, plus, where, mode_on_create, owner_on_create)


def _id(value: str) -> str | None:
    value = value.lstrip(":")
    return None if value in ("", "-") else value


def configs(tree: Tree, named: Sequence[str]) -> list[tuple[str, str]]:
    """(name, text) of the configuration to apply: the files named (absolute in the tree), or every one."""
    if ALL not in named:
        out = []
        for path in named:
            data = tree.read(path.lstrip("/"))
            if data is None:
                raise BootstrapError(
                    f"rpm.tmpfiles: {path} is not in the image", "install the package that ships it, or leave it out"
                )
            out.append((path, data.decode("utf-8", "replace")))
        return out
    chosen: dict[str, str] = {}
    for directory in CONFIG_DIRS:
        for match in tree.glob(f"{directory}/*.conf"):
            base = match.rpartition("/")[2]
            if not base.startswith("."):  # hidden files are not configuration, as systemd reads them
                chosen.setdefault(base, "/" + match)
    out = []
    for base in sorted(chosen):
        data = tree.read(chosen[base].lstrip("/"))  # a link to /dev/null (a mask) reads as nothing
        if data:
            out.append((chosen[base], data.decode("utf-8", "replace")))
    return out


def plan(tree: Tree, named: Sequence[str], boot: bool, left: list[str] | None = None) -> list[Item]:
    """Every item in the order it is applied: a path's items after those of its parents, a duplicate dropped."""
    by_path: dict[str, list[Item]] = {}
    for name, text in configs(tree, named):
        for item in parse(text, name, boot, left):
            have = by_path.setdefault(item.path, [])
            makers = [h for h in have if h.kind in MAKES] if item.kind in MAKES else []
            if makers:
                if any(dataclasses.replace(h, where=item.where) != item for h in makers):
                    log.warning("warning: tmpfiles %s: a second line for %s, passed over", item.where, item.path)
                continue
            have.append(item)
    ordered: list[Item] = []
    done: set[str] = set()
    for path in by_path:  # each after the lines of its parents, shallowest first
        parts = path.split("/")
        for here in ["/".join(parts[:i]) or "/" for i in range(1, len(parts))] + [path]:
            if here in by_path and here not in done:
                done.add(here)
                ordered.extend(by_path[here])
    return ordered


def _say(where: str, why: Skip, left: list[str] | None) -> None:
    """A warning for a line that cannot be applied; for one left out by design, a debug line (and `left` gets
    it)."""
    if isinstance(why, Left):
        log.debug("tmpfiles %s: %s: line left out", where, why)
        if left is not None:
            left.append(where)
    else:
        log.warning("warning: tmpfiles %s: %s: line passed over", where, why)


def apply(tree: Tree, named: Sequence[str], boot: bool = False) -> int:
    """Apply the tree's tmpfiles.d configuration (`named`: files, or `*` for all); how many lines took effect."""
    left: list[str] = []
    owners = _Owners(tree)
    done = 0
    for item in plan(tree, named, boot, left):
        try:
            if item.kind in NOT_RECORDED:
                raise Left(f"{NOT_RECORDED[item.kind]} are not made or recorded in an image")
            if item.kind in CLEANING:
                continue
            _apply(tree, item, owners)
            done += 1
        except Skip as why:
            _say(item.where, why, left)
        except (TreeError, OSError, ValueError, OverflowError) as exc:
            log.warning("warning: tmpfiles %s: %s: line passed over", item.where, exc)
    if left:
        log.info(
            "tmpfiles: %d line(s) left out by design (device nodes, ACLs, the build host's ids; -v lists them)",
            len(left),
        )
    return done


class _Owners:
    def __init__(self, tree: Tree) -> None:
        self.users, self.groups = account_ids(tree, "passwd"), account_ids(tree, "group")

    def uid(self, name: str | None) -> int | None:
        return self._look(name, self.users, "user")

    def gid(self, name: str | None) -> int | None:
        return self._look(name, self.groups, "group")

    @staticmethod
    def _look(name: str | None, table: dict[str, int], what: str) -> int | None:
        if name is None:
            return None
        number = plain_id(name)
        if number is not None:
            return number
        if name not in table:
            raise Skip(f"no {what} {name!r} in the image")
        return table[name]


def _set_perms(tree: Tree, rel: str, item: Item, owners: _Owners, created: bool = False) -> None:
    """The item's mode and owner on what is at `rel` (unset ones left as they are; `~` masks the mode). A symbolic
    link gets the owner alone (lchown), as systemd-tmpfiles gives it."""
    st = tree.lstat(rel)
    if st is None:
        return
    uid, gid = owners.uid(item.user), owners.gid(item.group)
    if item.owner_on_create and not created:
        uid = gid = None
    if stat.S_ISLNK(st.st_mode):
        link = (st.st_uid if uid is None else uid, st.st_gid if gid is None else gid)
        if link != (st.st_uid, st.st_gid):
            tree.own_link(rel, *link)
        return
    mode = stat.S_IMODE(st.st_mode)
    if item.mode is not None and not (item.mode_on_create and not created):
        mode = item.mode
        if item.masked and not created:
            for bits in (0o111, 0o222, 0o444):
                if not st.st_mode & bits:
                    mode &= ~bits
            if not stat.S_ISDIR(st.st_mode):
                mode &= ~0o7000
    new = (st.st_uid if uid is None else uid, st.st_gid if gid is None else gid, mode)
    if new != (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)):
        tree.set_owner_mode(rel, *new)


def _matches(tree: Tree, item: Item) -> list[str]:
    rel = item.path.lstrip("/")
    if item.kind in GLOBS and any(c in rel for c in "*?["):
        return tree.glob(rel)
    return [rel] if tree.lstat(rel) is not None else []


def _apply(tree: Tree, item: Item, owners: _Owners) -> None:
    rel = item.path.lstrip("/")
    owners.uid(item.user), owners.gid(item.group)  # an unknown name passes the line over before anything is made
    k = item.kind
    if k in "ezZ":
        for match in _matches(tree, item):
            if k == "e" and not tree.is_dir(match, follow=False):
                continue
            _set_perms(tree, match, item, owners)
            if k == "Z" and tree.is_dir(match, follow=False):
                for below, _st in list(tree.walk(match)):
                    _set_perms(tree, below, item, owners)
        return
    if k == "w":
        for match in _matches(tree, item):
            target = tree.resolve(match, follow_last=True)  # written through a link, as open(2) would
            st = tree.lstat(target) if target else None
            if st is None or not stat.S_ISREG(st.st_mode) or item.argument is None:
                continue
            old = (tree.read_whole(target, f"tmpfiles {item.path}") or b"") if item.plus else b""
            data = old + item.argument.encode("utf-8", "surrogateescape")
            tree.write(target, data, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
        return
    st = tree.lstat(rel)
    if k in "dDvqQ":
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise Skip(f"{item.path} is there and is not a directory")
        _parents(tree, rel)
        if st is None:
            tree.mkdir(rel, DEFAULT_MODES[k])
        _set_perms(tree, rel, item, owners, created=st is None)
    elif k in "fF":
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise Skip(f"{item.path} is there and is not a regular file")
        if st is None or k == "F" or item.plus:
            _parents(tree, rel)
            mode = DEFAULT_MODES[k] if st is None else stat.S_IMODE(st.st_mode)
            uid, gid = (0, 0) if st is None else (st.st_uid, st.st_gid)
            tree.write(rel, (item.argument or "").encode("utf-8", "surrogateescape"), mode, uid, gid)
        _set_perms(tree, rel, item, owners, created=st is None)
    elif k == "p":
        if st is not None and not stat.S_ISFIFO(st.st_mode):
            if not item.plus or stat.S_ISDIR(st.st_mode):
                raise Skip(f"{item.path} is there and is not a named pipe")
            tree.remove(rel)
            st = None
        if st is None:
            _parents(tree, rel)
            tree.mkfifo(rel, DEFAULT_MODES["p"])
        _set_perms(tree, rel, item, owners, created=st is None)
    elif k == "L":
        target = item.argument or FACTORY + item.path
        if st is not None and not item.plus:
            return  # what is there stays (systemd says so when it differs)
        if st is not None:
            tree.remove(rel)
        _parents(tree, rel)
        tree.symlink(rel, target)
    elif k == "C":
        _copy(tree, item, owners, st)


def _parents(tree: Tree, rel: str) -> None:
    parent = rel.rpartition("/")[0]
    if parent:
        tree.mkdir(parent, 0o755)


def _copy(tree: Tree, item: Item, owners: _Owners, st: os.stat_result | None) -> None:
    """`C`: the source (default: the factory's copy) copied when the destination is missing or an empty
    directory, owners and modes kept, symlinks copied as links."""
    rel = item.path.lstrip("/")
    source = (item.argument or FACTORY + item.path).lstrip("/")
    src = tree.resolve(source, follow_last=True)
    src_st = tree.lstat(src) if src else None
    if src_st is None:
        raise Left(f"the source /{source} is not in the image (systemd-tmpfiles skips such a line too)")
    if f"/{rel}/".startswith(f"/{src}/"):
        raise Skip(f"{item.path} is inside its source /{src}")
    if st is not None:
        empty_dir = tree.is_dir(rel, follow=False) and not any(True for _ in tree.walk(rel))
        if not (empty_dir and stat.S_ISDIR(src_st.st_mode)):
            return
    _parents(tree, rel)
    copied: dict[tuple[int, int], str] = {}
    _copy_one(tree, src, rel, src_st, copied)
    if stat.S_ISDIR(src_st.st_mode):
        for path, entry in list(tree.walk(src)):
            _copy_one(tree, path, rel + path[len(src) :], entry, copied)
    _set_perms(tree, rel, item, owners, created=True)


def _copy_one(tree: Tree, src: str, dest: str, st: os.stat_result, copied: dict[tuple[int, int], str]) -> None:
    """One entry of a copy: a directory, a file (a second name of a file already copied becomes a hard link to
    the copy, as systemd's copy keeps hard links), a symbolic link or a named pipe; a device node or socket is
    left out (the build makes none)."""
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
        first = copied.setdefault((st.st_dev, st.st_ino), dest)
        if first != dest:
            tree.hardlink(dest, first)
            return
    if stat.S_ISFIFO(st.st_mode):
        tree.mkfifo(dest, mode, st.st_uid, st.st_gid)
    elif stat.S_ISDIR(st.st_mode):
        tree.mkdir(dest, 0o755)
        tree.own_dir(dest, st.st_uid, st.st_gid, mode)
    elif stat.S_ISREG(st.st_mode):
        data = tree.read_whole(src, f"tmpfiles: copying to /{dest}") or b""
        tree.write(dest, data, mode, st.st_uid, st.st_gid)
    elif stat.S_ISLNK(st.st_mode):
        tree.symlink(dest, os.readlink(tree.path(src)), st.st_uid, st.st_gid)
