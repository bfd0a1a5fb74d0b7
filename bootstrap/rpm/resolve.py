"""Resolving a request (package names and comps groups) with libsolv, the solver dnf uses, as dnf does: rich,
file and versioned dependencies, epochs, obsoletes, the best architecture first (x86_64 before an i686 package
of the same name), and no weak dependencies (`install_weak_deps=False`, as the official images are built)."""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import solv

from bootstrap.errors import ResolveError
from bootstrap.rpm.comps import Group
from bootstrap.rpm.packages import RELATIONS, Dep, Package

_FLAGS = {
    "EQ": solv.REL_EQ,
    "LT": solv.REL_LT,
    "LE": solv.REL_LT | solv.REL_EQ,
    "GT": solv.REL_GT,
    "GE": solv.REL_GT | solv.REL_EQ,
}
_KEYS = {
    "provides": solv.SOLVABLE_PROVIDES,
    "requires": solv.SOLVABLE_REQUIRES,
    "recommends": solv.SOLVABLE_RECOMMENDS,
    "suggests": solv.SOLVABLE_SUGGESTS,
    "supplements": solv.SOLVABLE_SUPPLEMENTS,
    "enhances": solv.SOLVABLE_ENHANCES,
    "obsoletes": solv.SOLVABLE_OBSOLETES,
    "conflicts": solv.SOLVABLE_CONFLICTS,
}
_PATH = re.compile(r"(?<![\w.+-])/[^\s()]+")
"""File paths named in a dependency, rich ones included."""


@dataclass(frozen=True)
class Request:
    """What to install: package names (or provides) and comps group ids."""

    names: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    weak: bool = False
    """Install weak dependencies (Recommends, Supplements) too; dnf's install_weak_deps."""


def _evr(epoch: str | int, version: str, release: str) -> str:
    head = f"{epoch}:" if str(epoch) not in ("", "0") else ""
    return f"{head}{version}-{release}" if release else f"{head}{version}"


class _Pool:
    """A libsolv pool holding the packages, each solvable mapped back to its record."""

    def __init__(self, packages: Sequence[Package], arch: str) -> None:
        self.pool = solv.Pool()
        self.pool.setdisttype(solv.Pool.DISTTYPE_RPM)
        self.pool.setarch(arch)
        self.records: dict[int, Package] = {}
        repo = self.pool.add_repo("available")
        paths = self._needed_paths(packages)
        for pkg in packages:
            s = repo.add_solvable()
            s.name, s.evr, s.arch = pkg.name, _evr(pkg.epoch, pkg.version, pkg.release), pkg.arch
            for relation in RELATIONS:
                for dep in pkg.relation(relation):
                    s.add_deparray(_KEYS[relation], self._dep(dep, pkg))
            s.add_deparray(solv.SOLVABLE_PROVIDES, self.pool.rel2id(s.nameid, s.evrid, solv.REL_EQ))
            for path in paths.intersection(pkg.files):
                s.add_deparray(solv.SOLVABLE_PROVIDES, self.pool.str2id(path))
            self.records[s.id] = pkg
        repo.internalize()
        self.pool.installed = self.pool.add_repo("@System")
        self.pool.createwhatprovides()

    @staticmethod
    def _needed_paths(packages: Iterable[Package]) -> set[str]:
        """Paths some dependency names: only those of the packages' files become provides (what libsolv's
        addfileprovides does from the file lists)."""
        return {
            path
            for pkg in packages
            for relation in ("requires", "recommends", "conflicts", "obsoletes", "supplements")
            for dep in pkg.relation(relation)
            for path in _PATH.findall(dep.name)
        }

    def _dep(self, dep: Dep, pkg: Package) -> int:
        if dep.name.startswith("("):
            rich = self.pool.parserpmrichdep(dep.name)
            if rich is None:
                raise ResolveError(
                    f"{pkg.nevra}: unreadable rich dependency {dep.name!r}", "the repository's metadata is malformed"
                )
            return int(rich.id)
        name = self.pool.str2id(dep.name)
        if dep.flags not in _FLAGS:
            return int(name)
        evr = self.pool.str2id(_evr(dep.epoch, dep.version, dep.release))
        return int(self.pool.rel2id(name, evr, _FLAGS[dep.flags]))


def _names(request: Request, groups: dict[str, Group]) -> list[str]:
    names = list(request.names)
    for gid in request.groups:
        group = groups.get(gid)
        if group is None:
            raise ResolveError(f"no group {gid!r} in the repositories", f"groups there: {', '.join(sorted(groups))}")
        names += group.installed()
    return names


def resolve(packages: Sequence[Package], groups: dict[str, Group], request: Request, arch: str) -> list[Package]:
    """The packages to install for `request` on `arch`, sorted by name and architecture. Names of a group
    that no package provides are skipped (as dnf does); a name asked for directly must exist."""
    p = _Pool(packages, arch)
    jobs = []
    direct = set(request.names)
    for name in _names(request, groups):
        flags = solv.Selection.SELECTION_NAME | solv.Selection.SELECTION_PROVIDES | solv.Selection.SELECTION_DOTARCH
        sel = p.pool.select(name, flags)
        if sel.isempty():
            if name in direct:
                raise ResolveError(f"no package provides {name!r}", "check the package names of the request")
            continue
        jobs += sel.jobs(solv.Job.SOLVER_INSTALL)
    solver = p.pool.Solver()
    solver.set_flag(solv.Solver.SOLVER_FLAG_IGNORE_RECOMMENDED, int(not request.weak))
    problems = solver.solve(jobs)
    if problems:
        why = "; ".join(str(problem) for problem in problems)
        raise ResolveError(f"the request cannot be installed: {why}", "check the request and the repositories")
    chosen = [p.records[s.id] for s in solver.transaction().newsolvables()]
    return sorted(chosen, key=lambda pkg: (pkg.name, pkg.arch))
