"""The operating system of a built tree, as its os-release file names it: the SBOMs list it as a component,
and scanners read package purls only under one ("no OS is detected" otherwise)."""

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

PLACES = ("etc/os-release", "usr/lib/os-release")
"""Where os-release(5) says to look, in order."""


@dataclass(frozen=True)
class OperatingSystem:
    id: str
    """os-release `ID` (`debian`, `ubuntu`): the purl namespace and the SBOM component's name."""
    version_id: str = ""
    """os-release `VERSION_ID` (`12`, `24.04`); empty for suites without one (testing, unstable)."""
    codename: str = ""
    """os-release `VERSION_CODENAME`, the version when there is no `VERSION_ID`."""
    pretty_name: str = ""

    @property
    def version(self) -> str:
        """What scanners take as the version: `VERSION_ID`, else the codename (a testing or unstable tree)."""
        return self.version_id or self.codename

    @property
    def distro(self) -> str:
        """The purl `distro=` qualifier: `<id>-<version>`, as Trivy writes it (`debian-12`, `ubuntu-24.04`)."""
        return f"{self.id}-{self.version}" if self.version else self.id


def parse(text: str) -> dict[str, str]:
    """os-release's `KEY=value` lines, values unquoted as a shell would; other lines are skipped."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.strip().partition("=")
        if not eq or not key.isidentifier():
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            continue
        out[key] = " ".join(words)
    return out


def _inside(root: Path, relative: str) -> Path | None:
    """The file at `relative` in the tree, its symbolic links followed inside the tree (an absolute target
    is the tree's, never the host's); None when there is none."""
    path = root / relative
    for _ in range(8):
        if path.is_symlink():
            target = os.readlink(path)
            path = root / target.lstrip("/") if target.startswith("/") else path.parent / target
            continue
        # A directory on the way that links out of the tree leaves it: refused, as is anything not a file.
        real = Path(os.path.realpath(path))
        return real if real.is_relative_to(root.resolve()) and real.is_file() else None
    return None


def read(root: Path, default: OperatingSystem) -> OperatingSystem:
    """The tree's operating system from its os-release, else `default` (a tree without one)."""
    for place in PLACES:
        found = _inside(root, place)
        if found is None:
            continue
        fields = parse(found.read_text(errors="replace"))
        if fields.get("ID"):
            return OperatingSystem(
                fields["ID"], fields.get("VERSION_ID", ""), fields.get("VERSION_CODENAME", ""),
                fields.get("PRETTY_NAME", ""),
            )  # fmt: skip
    return default
