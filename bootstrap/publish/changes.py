"""What a rebuild would change against a previous build's lock: packages added, removed, up- or downgraded."""

from dataclasses import dataclass
from typing import Any

from bootstrap.family.interface import Selection
from bootstrap.records.lock import Lock, LockedInput

REBUILD_DUE = 10
"""Exit status of `check` when a rebuild is due."""


@dataclass(frozen=True)
class Change:
    name: str
    old: str | None
    new: str | None
    security: bool = False
    upgrade: bool = True
    """The new version is newer than the old, in its family's order of versions."""

    @property
    def kind(self) -> str:
        if self.old is None:
            return "added"
        if self.new is None:
            return "removed"
        return "upgraded" if self.upgrade else "downgraded"

    def describe(self) -> str:
        mark = " [security]" if self.security else ""
        if self.old is None:
            return f"+ {self.name} {self.new}{mark}"
        if self.new is None:
            return f"- {self.name} {self.old}"
        return f"~ {self.name} {self.old} -> {self.new}{mark}"


@dataclass(frozen=True)
class Changes:
    changes: tuple[Change, ...]
    epoch_before: int
    codename_before: str
    codename_after: str
    inputs: tuple[str, ...] = ()
    """The recipe's own inputs that changed (`file /etc/app.conf`, `recipe mine`)."""
    mismatch: tuple[str, ...] = ()
    """How the previous lock's request differs from this one (`arch arm64, not amd64`): its packages say
    nothing about this request, so a rebuild is due."""

    def __bool__(self) -> bool:
        return (
            bool(self.changes)
            or bool(self.inputs)
            or bool(self.mismatch)
            or self.codename_before != self.codename_after
        )

    def report(self) -> str:
        if not self:
            return "up to date: a rebuild would change nothing\n"
        if self.mismatch:
            return f"rebuild due: the previous lock is for another request ({'; '.join(self.mismatch)})\n"
        lines = []
        if self.codename_before != self.codename_after:
            lines.append(f"suite moved: {self.codename_before} -> {self.codename_after}")
        counts: dict[str, int] = {}
        for c in self.changes:
            counts[c.kind] = counts.get(c.kind, 0) + 1
        security = sum(c.security for c in self.changes)
        parts = [f"{n} {k}" for k, n in sorted(counts.items())]
        parts += [f"{len(self.inputs)} input(s) changed"] if self.inputs else []
        summary = ", ".join(parts)
        lines.append(f"rebuild due: {summary}" + (f" ({security} from the security suite)" if security else ""))
        lines += [f"* {what} changed" for what in self.inputs]
        lines += [c.describe() for c in self.changes]
        return "\n".join(lines) + "\n"

    def as_dict(self) -> dict[str, Any]:
        return {
            "changed": bool(self),
            "mismatch": list(self.mismatch),
            "inputs": list(self.inputs),
            "changes": [
                {"package": c.name, "kind": c.kind, "old": c.old, "new": c.new, "security": c.security}
                for c in self.changes
            ],
        }


@dataclass(frozen=True)
class Asked:
    """What a rebuild would be asked for: the previous lock must have been made for the same."""

    recipe: str
    suite: str
    """As asked: a suite (`stable`) or a codename (`bookworm`)."""
    arch: str

    def mismatch(self, lock: Lock, codename: str) -> tuple[str, ...]:
        """What differs, worded `recipe debian-base, not debian-slim`; empty when the lock is for this request."""
        out = []
        if lock.recipe != self.recipe:
            out.append(f"recipe {lock.recipe}, not {self.recipe}")
        if self.suite not in (lock.suite, lock.codename) and lock.codename != codename:
            out.append(f"suite {_named(lock.suite, lock.codename)}, not {_named(self.suite, codename)}")
        if lock.arch != self.arch:
            out.append(f"architecture {lock.arch}, not {self.arch}")
        return tuple(out)


def _named(suite: str, codename: str) -> str:
    return suite if suite == codename else f"{suite} ({codename})"


def compare(
    lock: Lock,
    selection: Selection,
    codename: str,
    inputs: tuple[LockedInput, ...] | None = None,
    asked: Asked | None = None,
) -> Changes:
    """The changes a rebuild `asked` for would make against `lock`; a lock made for another request (recipe,
    suite, architecture) is a change in itself."""
    before = {p.name: p.version for p in lock.packages}
    after = selection.by_name()
    out = []
    for name in sorted(set(before) | set(after)):
        old = before.get(name)
        new_pkg = after.get(name)
        new = new_pkg.version if new_pkg else None
        if old != new:
            security = bool(new_pkg and new_pkg.security)
            upgrade = old is None or new is None or selection.compare_versions(new, old) > 0
            out.append(Change(name, old, new, security, upgrade))
    changed: tuple[str, ...] = ()
    if inputs is not None:
        before_inputs = {(i.kind, i.name): i.sha256 for i in lock.inputs}
        after_inputs = {(i.kind, i.name): i.sha256 for i in inputs}
        changed = tuple(
            f"{kind} {name}"
            for kind, name in sorted(set(before_inputs) | set(after_inputs))
            if before_inputs.get((kind, name)) != after_inputs.get((kind, name))
        )
    mismatch = asked.mismatch(lock, codename) if asked is not None else ()
    return Changes(tuple(out), lock.epoch, lock.codename, codename, changed, mismatch)
