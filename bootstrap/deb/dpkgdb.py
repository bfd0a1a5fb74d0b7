"""Write the dpkg database for unpacked packages, as `dpkg --unpack` would leave it."""

import os
from collections.abc import Sequence
from pathlib import Path

from bootstrap.deb.unpack import Unpacked

DPKG_DIR = "var/lib/dpkg"
_SCRIPTS = {"preinst", "postinst", "prerm", "postrm", "config"}


def _status_stanza(item: Unpacked) -> str:
    control = item.control["control"].decode("utf-8", "replace").strip("\n")
    lines = control.split("\n")
    out = [lines[0], "Status: install ok unpacked"] + [line for line in lines[1:] if line.strip()]
    if item.conffiles:
        out.append("Conffiles:")
        out += [f" {path} newconffile" for path in item.conffiles]
    return "\n".join(out) + "\n"


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
            else:
                named.setdefault(words[1], []).append(who)
    return file_lines, named


def write(root: Path, items: Sequence[Unpacked]) -> None:
    """status, available, info/<key>.{list,md5sums,conffiles,scripts,...} and trigger interests."""
    db = root / DPKG_DIR
    for sub in ("info", "updates", "triggers", "alternatives", "parts"):
        (db / sub).mkdir(parents=True, exist_ok=True)
    (db / "available").write_text("")
    for name in ("diversions", "statoverride"):
        if not (db / name).exists():
            (db / name).write_text("")
    stanzas = []
    for item in sorted(items, key=lambda i: i.package.name):
        stanzas.append(_status_stanza(item))
        key = item.package.key
        (db / "info" / f"{key}.list").write_text("".join(p + "\n" for p in item.paths))
        for member, data in sorted(item.control.items()):
            if member == "control":
                continue
            path = db / "info" / f"{key}.{member}"
            path.write_bytes(data)
            os.chmod(path, 0o755 if member in _SCRIPTS else 0o644)
    (db / "status").write_text("\n".join(stanzas))
    file_lines, named = _trigger_interests(items)
    if file_lines:
        (db / "triggers" / "File").write_text("".join(line + "\n" for line in file_lines))
    for trigger, who in sorted(named.items()):
        (db / "triggers" / trigger).write_text("".join(w + "\n" for w in who))
    (db / "triggers" / "Unincorp").write_text("")
