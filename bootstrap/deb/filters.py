"""dpkg path filters (--path-exclude / --path-include) with dpkg's exact semantics.

- A path is matched as an absolute path (`/usr/share/doc/x`) with fnmatch(3) and no FNM_PATHNAME:
  `*` and `?` also match `/`; a backslash escapes the next character.
- Every rule is tried in order and the last one that matches decides.
- An excluded directory or symlink is kept when its path begins with the literal part (the text before
  the first `*?[\\`, without trailing slashes) of any include rule, so directories that will hold
  re-included files survive.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

_SPECIAL = re.compile(r"[*?\[\\]")


def _translate(pattern: str) -> str:
    """fnmatch(3) without FNM_PATHNAME or FNM_PERIOD, as a Python regular expression."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "\\" and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif c == "[":
            j = i
            if j < n and pattern[j] in "!^":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                out.append(re.escape(c))
                continue
            body = pattern[i:j].replace("\\", "\\\\")
            if body[:1] in ("!", "^"):
                body = "^" + body[1:]
            out.append(f"[{body}]")
            i = j + 1
        else:
            out.append(re.escape(c))
    return "".join(out)


@dataclass(frozen=True)
class Rule:
    include: bool
    pattern: str


@dataclass(frozen=True)
class PathFilter:
    """An ordered list of include/exclude rules, as given to dpkg."""

    rules: tuple[Rule, ...] = ()
    _compiled: tuple[tuple[bool, "re.Pattern[str]"], ...] = field(init=False, repr=False, compare=False)
    _literals: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        compiled = tuple((r.include, re.compile(_translate(r.pattern), re.S)) for r in self.rules)
        literals = tuple(_SPECIAL.split(r.pattern, maxsplit=1)[0].rstrip("/") for r in self.rules if r.include)
        object.__setattr__(self, "_compiled", compiled)
        object.__setattr__(self, "_literals", literals)

    @classmethod
    def from_lists(cls, exclude: Sequence[str], include: Sequence[str]) -> "PathFilter":
        """Excludes first, then includes: the order the official slim images use."""
        return cls(tuple(Rule(False, p) for p in exclude) + tuple(Rule(True, p) for p in include))

    def __bool__(self) -> bool:
        return bool(self.rules)

    def skips(self, path: str, is_dir_or_symlink: bool = False) -> bool:
        """True when dpkg would not write `path` (absolute, without a trailing slash)."""
        remove = False
        for include, regex in self._compiled:
            if regex.fullmatch(path):
                remove = not include
        if remove and is_dir_or_symlink:
            return not any(path.startswith(lit) for lit in self._literals)
        return remove

    def excluded_prefixes(self) -> list[str]:
        """The directories (root-relative, outermost only) below which exclude rules can match anything."""
        literals = (_SPECIAL.split(r.pattern, maxsplit=1)[0] for r in self.rules if not r.include)
        prefixes = sorted({lit.rsplit("/", 1)[0] for lit in literals})
        outer: list[str] = []
        for p in prefixes:
            if not any(p == o or p.startswith(o + "/") for o in outer):
                outer.append(p)
        return [p.strip("/") for p in outer if p.strip("/")]

    def dpkg_cfg(self) -> str:
        """The rules as a dpkg.cfg.d file, so dpkg inside the image keeps filtering."""
        lines = ["# Files that this image leaves out, as dpkg path filters (see dpkg(1)).\n"]
        for rule in self.rules:
            lines.append(f"path-{'include' if rule.include else 'exclude'} {rule.pattern}\n")
        return "".join(lines)
