"""The default mirror that the host's debootstrap names for a suite and architecture, read from its suite
scripts (/usr/share/debootstrap/scripts/<suite>) at run time, so that no host name lives in this project.

The scripts are shell; nothing of them is run. Only the `case $VAR in ... esac` blocks around their
`default_mirror URL` lines are followed, with ARCH, SUITE and CODENAME set, as the shell would choose.
"""

import fnmatch
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

_CASE = re.compile(r"^case\s+\"?\$\{?(\w+)\}?\"?\s+in\b")
_PATTERN = re.compile(r"^\(?([^()]+)\)\s*(.*)$")
_MIRROR = re.compile(r"^default_mirror\s+(\S+)")
_COMMENT = re.compile(r"(^|\s)#.*$")


def scripts_dir() -> Path:
    """debootstrap's suite scripts (BOOTSTRAP_DEBOOTSTRAP_DIR overrides, for tests and chroots)."""
    return Path(os.environ.get("BOOTSTRAP_DEBOOTSTRAP_DIR", "/usr/share/debootstrap/scripts"))


@dataclass
class _Case:
    value: str
    outer_active: bool
    matched: bool = False
    in_branch: bool = False
    active: bool = False


@dataclass
class _Reader:
    values: dict[str, str]
    stack: list[_Case] = field(default_factory=list)
    mirror: str | None = None

    @property
    def active(self) -> bool:
        return not self.stack or (self.stack[-1].in_branch and self.stack[-1].active)

    def line(self, text: str) -> None:
        for part in (p.strip() for p in text.split(";;")[:-1] or [text]):
            self.statement(part)
        if ";;" in text and self.stack:
            self.stack[-1].in_branch = False

    def statement(self, text: str) -> None:
        if m := _CASE.match(text):
            self.stack.append(_Case(self.values.get(m.group(1), ""), self.active))
            return
        if text == "esac" and self.stack:
            self.stack.pop()
            return
        top = self.stack[-1] if self.stack else None
        if top is not None and not top.in_branch and (m := _PATTERN.match(text)):
            alternatives = [a.strip().strip("\"'") for a in m.group(1).split("|")]
            hit = not top.matched and any(fnmatch.fnmatchcase(top.value, a) for a in alternatives)
            top.in_branch, top.active = True, top.outer_active and hit
            top.matched = top.matched or hit
            text = m.group(2).strip()
        if (m := _MIRROR.match(text)) and self.active:
            self.mirror = m.group(1)


def default_mirror(text: str, suite: str, arch: str) -> str | None:
    """The URL the last `default_mirror` reached in a suite script sets, for this suite and architecture."""
    reader = _Reader({"ARCH": arch, "SUITE": suite, "CODENAME": suite})
    for raw in text.splitlines():
        line = _COMMENT.sub("", raw).strip()
        if line:
            reader.line(line)
    return reader.mirror


def script_for(suite: str, fallback: str) -> Path | None:
    """The suite's own script, else the distribution's common one (`fallback`), when the host has it."""
    base = scripts_dir()
    for name in (suite, fallback):
        if name and "/" not in name and (base / name).is_file():
            return base / name
    return None


def mirror_for(suite: str, arch: str, fallback: str) -> tuple[str, Path] | None:
    """The default mirror for the suite and architecture, and the script that names it."""
    script = script_for(suite, fallback)
    if script is None:
        return None
    try:
        text = script.read_text(errors="replace")
    except OSError:
        return None
    url = default_mirror(text, suite, arch)
    return (url, script) if url else None
