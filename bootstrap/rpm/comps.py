"""comps.xml: the groups of a repository (what `dnf install @group` asks for)."""

from collections.abc import Iterable
from dataclasses import dataclass, field

from bootstrap.rpm import xmlstream

INSTALLED_TYPES = ("mandatory", "default")
"""The package kinds of a group that dnf installs by default (optional ones only when asked for)."""


@dataclass
class Group:
    id: str
    packages: dict[str, list[str]] = field(default_factory=dict)
    """Kind (mandatory, default, optional, conditional) -> package names."""

    def installed(self) -> list[str]:
        """What installing the group asks for."""
        return [n for kind in INSTALLED_TYPES for n in self.packages.get(kind, [])]


def read(chunks: Iterable[bytes], what: str) -> dict[str, Group]:
    groups: dict[str, Group] = {}
    state: dict[str, str] = {"in": "", "kind": ""}
    current = Group("")

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal current
        if name == "group":
            state["in"] = "group"
            current = Group("")
        elif name == "packagereq":
            state["kind"] = attrs.get("type", "mandatory")

    def end(name: str, text: str) -> None:
        if state["in"] != "group":
            return
        if name == "id" and not current.id:
            current.id = text.strip()
        elif name == "packagereq":
            current.packages.setdefault(state["kind"], []).append(text.strip())
        elif name == "group":
            groups[current.id] = current
            state["in"] = ""

    xmlstream.parse(chunks, start, end, what)
    return groups
