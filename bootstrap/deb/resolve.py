"""The resolver: from a package request to an exact, deterministic set of packages.

Handles alternatives (`a | b`), virtual packages (Provides, versioned or not), versioned relations,
Pre-Depends and Multi-Arch qualifiers, and checks Conflicts and Breaks in the result. Single-choice
dependencies are followed first; alternatives are decided afterwards, preferring one that is already
in the set, then the first that can be installed. The result depends only on the index and the request.
"""

from collections import deque
from dataclasses import dataclass, field

from bootstrap.deb import relations
from bootstrap.deb.index import Index, Package
from bootstrap.deb.relations import Group, Relation
from bootstrap.errors import ResolveError

_PRIORITY_RANK = {"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}


@dataclass(frozen=True)
class Request:
    priorities: tuple[str, ...] = ("required",)
    essential: bool = True
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    prefer: tuple[str, ...] = ()
    """Taken first when they stand among the alternatives of a dependency."""
    ignore_depends: tuple[str, ...] = ()
    """A dependency naming any of these counts as satisfied without installing anything (dpkg's
    --ignore-depends): what only maintainer scripts need, in an image where none runs."""


@dataclass(frozen=True)
class Selection:
    packages: tuple[Package, ...]
    """Sorted by name."""

    def names(self) -> list[str]:
        return [p.name for p in self.packages]

    def by_name(self) -> dict[str, Package]:
        return {p.name: p for p in self.packages}


def _relations(pkg: Package, field_name: str) -> tuple[Group, ...]:
    try:
        return relations.parse(getattr(pkg, field_name))
    except ValueError as exc:
        raise ResolveError(f"{pkg.name} {pkg.version}: {exc}", "the archive's index is malformed") from None


@dataclass
class _State:
    index: Index
    exclude: frozenset[str]
    selected: dict[str, Package] = field(default_factory=dict)
    provided: dict[str, list[tuple[Package, str]]] = field(default_factory=dict)
    why: dict[str, str] = field(default_factory=dict)
    _met: set[Relation] = field(default_factory=set)
    _asked: dict[Relation, int] = field(default_factory=dict)
    """How many providers of each relation not met were looked at (`satisfied`)."""

    def _qualifier_ok(self, rel: Relation, pkg: Package) -> bool:
        if rel.qualifier in ("", "native", self.index.arch):
            return rel.qualifier != "native" or pkg.arch in (self.index.arch, "all")
        if rel.qualifier == "any":
            return pkg.multi_arch == "allowed"
        return False

    def satisfied(self, rel: Relation) -> bool:
        """Whether the selection meets `rel`. What is selected is never taken back, so a relation met stays met,
        and one not met needs only the providers selected since it was last asked (else a virtual that
        thousands provide and require costs the square of them)."""
        if rel in self._met:
            return True
        pkg = self.selected.get(rel.name)
        if pkg and self._qualifier_ok(rel, pkg) and relations.version_satisfies(pkg.version, rel.op, rel.version):
            self._met.add(rel)
            return True
        providers = self.provided.get(rel.name, [])
        for provider, pversion in providers[self._asked.get(rel, 0) :]:
            if rel.qualifier == "any" and provider.multi_arch != "allowed":
                continue
            if not rel.op or (pversion and relations.version_satisfies(pversion, rel.op, rel.version)):
                self._met.add(rel)
                return True
        self._asked[rel] = len(providers)
        return False

    def choose(self, rel: Relation) -> Package | None:
        """A package not yet selected that would satisfy `rel`, or None."""
        if rel.name not in self.exclude and rel.name not in self.selected:
            for pkg in self.index.versions(rel.name):
                if self._qualifier_ok(rel, pkg) and relations.version_satisfies(pkg.version, rel.op, rel.version):
                    return pkg
        options: list[Package] = []
        for name in self.index.providers(rel.name):
            if name in self.exclude or name in self.selected:
                continue
            provider = self.index.candidate(name)
            if provider is None or (rel.qualifier == "any" and provider.multi_arch != "allowed"):
                continue
            for prov in _relations(provider, "provides"):
                p = prov[0]
                if p.name == rel.name and (
                    not rel.op or (p.version and relations.version_satisfies(p.version, rel.op, rel.version))
                ):
                    options.append(provider)
                    break
        options.sort(key=lambda p: (_PRIORITY_RANK.get(p.priority, 5), p.name))
        return options[0] if options else None

    def add(self, pkg: Package, why: str) -> list[Group]:
        self.selected[pkg.name] = pkg
        self.why[pkg.name] = why
        for prov in _relations(pkg, "provides"):
            self.provided.setdefault(prov[0].name, []).append((pkg, prov[0].version))
        return list(_relations(pkg, "pre_depends")) + list(_relations(pkg, "depends"))

    def explain(self, name: str) -> str:
        chain = [name]
        while (parent := self.why.get(chain[-1], "")) and parent not in chain and parent != "requested":
            chain.append(parent)
        return " <- ".join(chain)


def _unsatisfiable(state: _State, group: Group, owner: Package) -> ResolveError:
    wanted = " | ".join(str(r) for r in group)
    details = []
    for rel in group:
        versions = [p.version for p in state.index.versions(rel.name)]
        if rel.name in state.exclude:
            details.append(f"{rel.name} is excluded")
        elif rel.name in state.selected:
            details.append(f"{rel.name} {state.selected[rel.name].version} is already selected")
        elif versions:
            details.append(f"{rel.name} has only {', '.join(versions)}")
        elif not state.index.providers(rel.name):
            details.append(f"no package {rel.name}")
    return ResolveError(
        f"cannot satisfy {wanted!r} needed by {state.explain(owner.name)}"
        + (f" ({'; '.join(details)})" if details else ""),
        "check the suite and components, or change the recipe's include/exclude lists",
    )


def resolve(index: Index, request: Request) -> Selection:
    """Select the packages of `request` and everything they depend on."""
    exclude = frozenset(request.exclude)
    wanted: set[str] = set(request.include)
    for prio in request.priorities:
        wanted |= index.with_priority(prio)
    if request.essential:
        wanted |= index.essential()
    state = _State(index, exclude)
    hard: deque[tuple[Group, Package]] = deque()
    choices: deque[tuple[Group, Package]] = deque()

    def queue(groups: list[Group], owner: Package) -> None:
        for g in groups:
            (hard if len(g) == 1 else choices).append((g, owner))

    ignored = frozenset(request.ignore_depends)
    for name in sorted(wanted - exclude):
        pkg = index.candidate(name)
        if pkg is None and name in request.include:
            # A virtual package: its provider, as apt-get install takes it.
            if state.satisfied(Relation(name)):
                continue
            pkg = state.choose(Relation(name))
        if pkg is None:
            if name in request.include:
                raise ResolveError(
                    f"package {name!r} is not in the archive for {index.arch}",
                    "check the name, the suite and the recipe's components",
                )
            continue
        if pkg.name not in state.selected:
            queue(state.add(pkg, "requested"), pkg)

    while hard or choices:
        group, owner = hard.popleft() if hard else choices.popleft()
        if any(state.satisfied(rel) or rel.name in ignored for rel in group):
            continue
        ordered = sorted(group, key=lambda r: r.name not in request.prefer)
        for rel in ordered:
            pkg = state.choose(rel)
            if pkg is not None:
                queue(state.add(pkg, owner.name), pkg)
                break
        else:
            raise _unsatisfiable(state, group, owner)

    _check_conflicts(state)
    return Selection(tuple(state.selected[n] for n in sorted(state.selected)))


def _check_conflicts(state: _State) -> None:
    for pkg in state.selected.values():
        for field_name in ("conflicts", "breaks"):
            for group in _relations(pkg, field_name):
                for rel in group:
                    hits = [state.selected[rel.name]] if rel.name in state.selected else []
                    hits += [p for p, _ in state.provided.get(rel.name, ()) if not rel.op]
                    for other in hits:
                        if other.name == pkg.name:
                            continue
                        if other.name == rel.name and not relations.version_satisfies(
                            other.version, rel.op, rel.version
                        ):
                            continue
                        raise ResolveError(
                            f"{pkg.name} {pkg.version} {field_name.rstrip('s')}s with {other.name} {other.version}"
                            f" ({state.explain(other.name)})",
                            "add one of them to the recipe's exclude list, or pick another alternative",
                        )
