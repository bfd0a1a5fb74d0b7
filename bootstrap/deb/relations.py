"""Debian package relations (Depends, Pre-Depends, Provides, Conflicts, Breaks) and version checks."""

import re
from dataclasses import dataclass
from functools import lru_cache

from debian.debian_support import version_compare

_ALT = re.compile(
    r"^\s*(?P<name>[a-z0-9][a-z0-9.+\-]*)(?::(?P<qual>[a-z0-9\-]+))?\s*"
    r"(?:\(\s*(?P<op><<|<=|=|>=|>>|<|>)\s*(?P<version>[^)\s]+)\s*\))?\s*"
    r"(?:\[[^\]]*\])?\s*(?:<[^>]*>\s*)*$"
)


@dataclass(frozen=True)
class Relation:
    name: str
    qualifier: str = ""
    op: str = ""
    version: str = ""

    def __str__(self) -> str:
        q = f":{self.qualifier}" if self.qualifier else ""
        v = f" ({self.op} {self.version})" if self.op else ""
        return f"{self.name}{q}{v}"


Group = tuple[Relation, ...]
"""Alternatives: any one satisfies the group (`a | b`)."""


@lru_cache(maxsize=16384)
def parse(field: str) -> tuple[Group, ...]:
    """Parse a relationship field into groups of alternatives. Raises ValueError on malformed input."""
    groups: list[Group] = []
    for part in field.replace("\n", " ").split(","):
        if not part.strip():
            continue
        alts = []
        for alt in part.split("|"):
            m = _ALT.match(alt)
            if not m:
                raise ValueError(f"malformed relation {alt.strip()!r}")
            op = m.group("op") or ""
            op = {"<": "<=", ">": ">="}.get(op, op)
            alts.append(Relation(m.group("name"), m.group("qual") or "", op, m.group("version") or ""))
        groups.append(tuple(alts))
    return tuple(groups)


def version_satisfies(version: str, op: str, wanted: str) -> bool:
    """Whether `version op wanted` holds, with dpkg's version ordering."""
    if not op:
        return True
    c = version_compare(version, wanted)
    return {"<<": c < 0, "<=": c <= 0, "=": c == 0, ">=": c >= 0, ">>": c > 0}[op]
