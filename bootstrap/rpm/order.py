"""rpm's install order for one transaction, simplified: what a package requires (by name, provide or file) before
it, cycles broken by name, deterministic."""

import re
from collections.abc import Mapping, Sequence

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
    done: list[str] = []
    seen: set[str] = set()

    def visit(name: str, stack: set[str]) -> None:
        if name in seen or name in stack:
            return
        stack.add(name)
        for req in headers[name].strings(tags.REQUIRENAME):
            if req.startswith("rpmlib("):
                continue
            for candidate in _names(req):
                dep = provider.get(candidate)
                if dep is not None and dep != name:
                    visit(dep, stack)
        stack.discard(name)
        if name not in seen:
            seen.add(name)
            done.append(name)

    for name in sorted(headers):
        visit(name, set())
    return done
