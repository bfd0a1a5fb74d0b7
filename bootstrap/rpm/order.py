"""rpm's install order for one transaction, simplified: what a package requires (by name, provide or file) before
it, cycles broken by name, deterministic (`bootstrap.family.order`)."""

import re
from collections.abc import Mapping, Sequence

from bootstrap.family.order import depth_first
from bootstrap.numbers import DIGITS
from bootstrap.rpm import tags
from bootstrap.rpm.header import Header

_RICH_WORDS = {"and", "or", "if", "else", "with", "without", "unless"}
_TOKEN = re.compile(r"[^\s()]+")


def _names(requirement: str) -> list[str]:
    """The names a requirement can be met by: itself, or each name of a rich `(a or b)` expression."""
    if not requirement.startswith("("):
        return [requirement]
    words = _TOKEN.findall(requirement)
    return [w for w in words if w not in _RICH_WORDS and w[0] not in DIGITS and w not in ("<", "<=", "=", ">=", ">")]


def install_order(headers: Mapping[str, Header], files: Mapping[str, Sequence[str]]) -> list[str]:
    """The package names of `headers` (name -> main header; `files`: name -> its paths), dependencies first."""
    provider: dict[str, str] = {}
    for name in sorted(headers):
        provider.setdefault(name, name)
        for p in headers[name].strings(tags.PROVIDENAME):
            provider.setdefault(p, name)
        for path in files.get(name, ()):
            provider.setdefault(path, name)

    def needs(name: str) -> list[str]:
        out = []
        for req in headers[name].strings(tags.REQUIRENAME):
            if not req.startswith("rpmlib("):
                out += [d for d in (provider.get(c) for c in _names(req)) if d is not None and d != name]
        return out

    return depth_first(sorted(headers), needs)
