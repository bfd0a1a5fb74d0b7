"""Users and groups written into the image's own account files, as useradd and groupadd would.

The image's /etc/passwd, /etc/group, /etc/shadow and /etc/gshadow (made by base-passwd and shadow's
scripts) get one line per recipe account, with the defaults of the image's /etc/login.defs: password
locked, ageing fields from PASS_*, the last change on the image's epoch day; a home directory made with
HOME_MODE (else from UMASK) and /etc/skel's files, owned by the user. Nothing runs inside the image, so
the same code serves scriptless images, whose account files it starts from nothing.
"""

import stat
from collections.abc import Sequence

from bootstrap.build.recipe import GroupSpec, UserSpec
from bootstrap.errors import RecipeError
from bootstrap.host.tree import Tree
from bootstrap.log import log
from bootstrap.numbers import DIGITS, MAX_ID, is_decimal

_AGEING = (("PASS_MIN_DAYS", 0), ("PASS_MAX_DAYS", 99999), ("PASS_WARN_AGE", 7))


def read_table(tree: Tree, path: str) -> list[list[str]]:
    data = tree.read(path)
    if data is None:
        return []
    return [line.split(":") for line in data.decode("utf-8", "surrogateescape").splitlines() if line]


def _write_table(
    tree: Tree, path: str, rows: Sequence[Sequence[str]], default_mode: int, group: int = 0, backup: bool = False
) -> None:
    """Rewrite an account file, keeping the mode and group of the file it replaces (a symbolic link's target's,
    inside the tree; the link itself is replaced, as shadow-utils renames its new file over it); anything but a
    regular file has none to keep. With `backup`, a file whose content changes leaves what it held in `<file>-`
    beside the name (not the link's target), with its mode, owner and date, and an unchanged one is not written
    again, as shadow-utils' useradd and groupadd do."""
    resolved = tree.resolve(path, follow_last=True)
    st = tree.lstat(resolved) if resolved else None
    regular = st is not None and stat.S_ISREG(st.st_mode)
    mode = stat.S_IMODE(st.st_mode) if st is not None and regular else default_mode
    gid = st.st_gid if st is not None and regular else group
    data = "".join(":".join(row) + "\n" for row in rows).encode("utf-8", "surrogateescape")
    if backup and st is not None and regular:
        old = tree.read(resolved)
        if old == data:
            return  # as the tools leave a file they do not change
        if old is not None:
            tree.write(f"{path}-", old, mode, st.st_uid, st.st_gid, mtime=int(st.st_mtime))
    tree.write(path, data, mode, 0, gid)


def _free_gid(defs: dict[str, str], taken: set[int], system: bool = False) -> int:
    """The gid groupadd picks (login.defs): the lowest free one from GID_MIN to GID_MAX (1000 to 60000), or for a
    system group the highest free one from SYS_GID_MAX down to SYS_GID_MIN (999 to 101)."""
    if system:
        low, high = number(defs, "SYS_GID_MIN", 101), number(defs, "SYS_GID_MAX", 999)
        candidates = range(high, low - 1, -1)
    else:
        low, high = number(defs, "GID_MIN", 1000), number(defs, "GID_MAX", 60000)
        candidates = range(low, high + 1)
    free = next((g for g in candidates if g not in taken), None)
    if free is None:
        raise RecipeError(f"no free gid from {low} to {high} in the image", "give the user a gid or a group")
    return free


def login_defs(tree: Tree) -> dict[str, str]:
    out: dict[str, str] = {}
    data = tree.read("etc/login.defs") or b""
    for line in data.decode("utf-8", "replace").splitlines():
        words = line.split()
        if len(words) >= 2 and not words[0].startswith("#"):
            out[words[0]] = words[1]
    return out


def number(defs: dict[str, str], key: str, default: int, octal: bool = False, high: int = MAX_ID) -> int:
    """A number of login.defs as useradd reads one: its default when the file's is missing, not a number (in
    octal, for a mode) or past `high`, with a warning, as useradd says "configuration error" and goes on (the
    file is the image's, a package's)."""
    text = defs.get(key)
    if text is None:
        return default
    digits = DIGITS - {"8", "9"} if octal else DIGITS
    if text and set(text) <= digits and int(text, 8 if octal else 10) <= high:
        return int(text, 8 if octal else 10)
    log.warning("/etc/login.defs: %s %r is not a number useradd takes: %s used, as useradd does", key, text, default)
    return default


def home_mode(defs: dict[str, str]) -> int:
    if "HOME_MODE" in defs:
        return number(defs, "HOME_MODE", 0o755, octal=True, high=0o7777)
    return 0o777 & ~number(defs, "UMASK", 0o022, octal=True, high=0o777)


def _shadow_group(tree: Tree) -> int:
    groups = {row[0]: row for row in read_table(tree, "etc/group") if len(row) > 2}
    gid = groups["shadow"][2] if "shadow" in groups else "0"
    return int(gid) if is_decimal(gid) and int(gid) <= MAX_ID else 0


def add(
    tree: Tree,
    groups: Sequence[GroupSpec],
    users: Sequence[UserSpec],
    epoch: int,
    where: str = "",
    locked: str = "!",
    backups: bool = False,
) -> None:
    """Add the recipe's groups and users to the image's account files and make their homes. `locked` is the
    password field the distribution's useradd writes for a new account (`!`; Red Hat's `!!`); with `backups`,
    each account file changed keeps what it held before in `<file>-` (`_write_table`)."""
    group_rows = read_table(tree, "etc/group")
    passwd_rows = read_table(tree, "etc/passwd")
    gshadow_rows = read_table(tree, "etc/gshadow")
    shadow_rows = read_table(tree, "etc/shadow")
    has_gshadow = tree.lstat("etc/gshadow") is not None
    gids = {row[0]: int(row[2]) for row in group_rows if len(row) > 2 and is_decimal(row[2])}
    uids = {row[0]: int(row[2]) for row in passwd_rows if len(row) > 2 and is_decimal(row[2])}
    defs = login_defs(tree)

    def new_group(name: str, gid: int, password: str = "!") -> None:
        if name in gids or gid in gids.values():
            taken = name if name in gids else f"gid {gid}"
            raise RecipeError(f"{where}: group {name}: {taken} is already in the image's /etc/group", "choose another")
        gids[name] = gid
        group_rows.append([name, "x", str(gid), ""])
        gshadow_rows.append([name, password, "", ""])

    for g in groups:
        new_group(g.name, g.gid, g.password)
    day = str(epoch // 86400)
    for u in users:
        if u.name in uids or u.uid in uids.values():
            taken = u.name if u.name in uids else f"uid {u.uid}"
            raise RecipeError(
                f"{where}: user {u.name}: {taken} is already in the image's /etc/passwd", "choose another"
            )
        if u.group is not None:
            if u.group not in gids:
                raise RecipeError(
                    f"{where}: user {u.name}: no group {u.group!r} in the image", "declare it in [[groups]]"
                )
            gid = gids[u.group]
        elif u.gid is not None:
            gid = u.gid
            if gid not in gids.values():
                new_group(u.name, gid)
        else:
            gid = u.uid if u.uid not in gids.values() else _free_gid(defs, set(gids.values()), u.system)
            new_group(u.name, gid)
        uids[u.name] = u.uid
        passwd_rows.append([u.name, "x", str(u.uid), str(gid), u.comment, u.home_dir, u.shell])
        # useradd -r: no ageing; otherwise login.defs' PASS_* (min, max, warn)
        ageing = ["", "", ""] if u.system else [str(number(defs, k, d)) for k, d in _AGEING]
        shadow_rows.append([u.name, locked, day, *ageing, "", "", ""])
        for extra in u.groups:
            for rows, members in ((group_rows, 3), (gshadow_rows, 3)):
                for row in rows:
                    if row[0] == extra and len(row) > members:
                        row[members] = ",".join([m for m in row[members].split(",") if m] + [u.name])
        if not u.system:  # useradd -r makes no home
            _make_home(tree, u, gid, home_mode(defs))
    _write_table(tree, "etc/group", group_rows, 0o644, backup=backups)
    _write_table(tree, "etc/passwd", passwd_rows, 0o644, backup=backups)
    _write_table(tree, "etc/shadow", shadow_rows, 0o640, _shadow_group(tree), backups)
    if has_gshadow:
        _write_table(tree, "etc/gshadow", gshadow_rows, 0o640, _shadow_group(tree), backups)


def _make_home(tree: Tree, user: UserSpec, gid: int, mode: int) -> None:
    """The home directory with /etc/skel's files, as `useradd -m` makes it (an existing one is left alone)."""
    home = user.home_dir.lstrip("/")
    if not home or tree.lstat(home) is not None or user.home_dir in ("/nonexistent", "/dev/null"):
        return
    tree.mkdir(home)
    tree.own_dir(home, user.uid, gid, mode)
    skel = tree.resolve_dir("etc/skel")
    real_home = tree.resolve_dir(home)
    if not skel or tree.lstat(skel) is None or real_home.startswith(skel + "/") or skel.startswith(real_home + "/"):
        return
    for path, st in tree.walk(skel):
        target = f"{home}/{path[len(skel) + 1 :]}"
        if stat.S_ISDIR(st.st_mode):
            tree.mkdir(target)
            tree.own_dir(target, user.uid, gid, stat.S_IMODE(st.st_mode))
        elif stat.S_ISREG(st.st_mode):
            tree.write(target, tree.read(path) or b"", stat.S_IMODE(st.st_mode), user.uid, gid)
