"""Write the dpkg database for unpacked packages, as `dpkg --unpack` would leave it, or as a distroless image
carries it (one control stanza per package in status.d, which scanners read)."""

import hashlib
import stat
from collections.abc import Collection, Sequence

from bootstrap.deb.index import Package
from bootstrap.deb.unpack import Unpacked
from bootstrap.errors import UnpackError
from bootstrap.host.tree import Tree, write_at

DPKG_DIR = "var/lib/dpkg"
_SCRIPTS = {"preinst", "postinst", "prerm", "postrm", "config"}


def _classified(lines: list[str], pkg: Package) -> list[str]:
    """The control fields with Priority and Section replaced by the archive index's."""
    archive = {"Priority": pkg.priority, "Section": pkg.section}
    out = []
    for line in lines:
        name = line.split(":", 1)[0]
        if archive.get(name):
            out.append(f"{name}: {archive.pop(name)}")
        else:
            archive.pop(name, None)
            out.append(line)
    return out + [f"{k}: {v}" for k, v in archive.items() if v]


def _status_stanza(item: Unpacked, archive_classified: bool) -> str:
    control = item.control["control"].decode("utf-8", "replace").strip("\n")
    lines = [line for line in control.split("\n") if line.strip()]
    fields = _classified(lines[1:], item.package) if archive_classified else lines[1:]
    out = [lines[0], "Status: install ok unpacked", *fields]
    if item.conffiles:
        out.append("Conffiles:")
        out += [f" {path} newconffile" for path in item.conffiles]
    return "\n".join(out) + "\n"


RESERVED = frozenset({".", "..", "File", "Unincorp", "Lock"})
"""Names in dpkg's triggers directory that are not a trigger's."""


def _trigger_interests(items: Sequence[Unpacked]) -> tuple[list[str], dict[str, list[str]]]:
    """File-trigger lines and explicit-trigger lines, from every package's `triggers` control file."""
    file_lines: list[str] = []
    named: dict[str, list[str]] = {}
    for item in items:
        for line in item.control.get("triggers", b"").decode("utf-8", "replace").splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) != 2 or not words[0].startswith("interest"):
                continue
            who = item.package.key + ("/noawait" if words[0] == "interest-noawait" else "")
            if words[1].startswith("/"):
                file_lines.append(f"{words[1]} {who}")
            elif not words[1].isascii() or "/" in words[1] or words[1] in RESERVED or not words[1].isprintable():
                raise UnpackError(
                    f"{item.package.name}: its triggers file names {words[1][:80]!r}, which is no trigger name",
                    "dpkg takes printable ASCII without '/' (a file trigger is an absolute path): the package is "
                    "malformed or hostile",
                )
            else:
                named.setdefault(words[1], []).append(who)
    return file_lines, named


def write(tree: Tree, items: Sequence[Unpacked], archive_classified: Collection[str] = ()) -> None:
    """status, available, info/<key>.{list,md5sums,conffiles,scripts,...} and trigger interests.

    `archive_classified` names the packages whose status records Priority and Section as the archive index
    has them rather than as their .deb does: in a debootstrapped system, the packages of the first (required)
    phase, which dpkg re-classified from the index when debootstrap gave it its available file."""
    for sub in ("info", "updates", "triggers", "alternatives", "parts"):
        tree.mkdir(f"{DPKG_DIR}/{sub}")
    tree.write(f"{DPKG_DIR}/available", "")
    stanzas = []
    with tree.dirfd(f"{DPKG_DIR}/info") as info:
        for item in sorted(items, key=lambda i: i.package.name):
            stanzas.append(_status_stanza(item, item.package.name in archive_classified))
            key = item.package.key
            write_at(info, f"{key}.list", "".join(p + "\n" for p in item.paths))
            for member, data in sorted(item.control.items()):
                if member != "control":
                    write_at(info, f"{key}.{member}", data, 0o755 if member in _SCRIPTS else 0o644)
    tree.write(f"{DPKG_DIR}/status", "\n".join(stanzas))
    file_lines, named = _trigger_interests(items)
    with tree.dirfd(f"{DPKG_DIR}/triggers") as triggers:
        if file_lines:
            write_at(triggers, "File", "".join(line + "\n" for line in file_lines))
        for trigger, who in sorted(named.items()):
            write_at(triggers, trigger, "".join(w + "\n" for w in who))
        write_at(triggers, "Unincorp", "")


STATUS_D = f"{DPKG_DIR}/status.d"


def _md5sums(tree: Tree, item: Unpacked) -> bytes:
    """The package's md5sums as shipped; for a package that ships none, made from its files in the tree."""
    shipped = item.control.get("md5sums")
    if shipped is not None:
        return shipped
    lines = []
    for path in item.paths:
        if path.strip("/.") == "":
            continue
        st = tree.lstat(path)
        data = tree.read(path) if st is not None and stat.S_ISREG(st.st_mode) else None
        if data is not None:
            lines.append(f"{hashlib.md5(data).hexdigest()}  {path.lstrip('/')}\n")
    return "".join(lines).encode("utf-8", "surrogateescape")


def write_status_d(tree: Tree, items: Sequence[Unpacked]) -> list[str]:
    """The dpkg database of a distroless image, which scanners read: `status.d/<package>`, the package's
    control stanza as shipped, and `status.d/<package>.md5sums` beside it. Returns the package names."""
    tree.mkdir(STATUS_D)
    names = []
    for item in sorted(items, key=lambda i: i.package.name):
        name = item.package.name
        tree.write(f"{STATUS_D}/{name}", item.control["control"], 0o644)
        tree.write(f"{STATUS_D}/{name}.md5sums", _md5sums(tree, item), 0o644)
        names.append(name)
    return names


class DpkgFiles:
    """Which files each package owns, from dpkg's database in an image layer (`bootstrap inspect`): the
    `info/*.list` files, or the md5sums of a distroless status.d."""

    def owns(self, member: str) -> bool:
        return (member.startswith("var/lib/dpkg/info/") and member.endswith(".list")) or (
            member.startswith("var/lib/dpkg/status.d/") and member.endswith(".md5sums")
        )

    def files(self, member: str, data: bytes) -> dict[str, list[str]]:
        base = member.rsplit("/", 1)[1]
        lines = data.decode("utf-8", "replace").splitlines()
        if member.endswith(".list"):
            return {base[: -len(".list")].split(":", 1)[0]: lines}
        # A distroless image's database: the md5sums name each package's files.
        return {base[: -len(".md5sums")]: ["/" + line.split("  ", 1)[1] for line in lines if "  " in line]}
