"""Resolving a request (package names and comps groups) with libsolv, the solver dnf uses, as dnf does: rich,
file and versioned dependencies, epochs, obsoletes, the best architecture first (x86_64 before an i686 package
of the same name), and no weak dependencies (`install_weak_deps=False`, as the official images are built)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import solv

from bootstrap.errors import ResolveError
from bootstrap.rpm import listing
from bootstrap.rpm.comps import Group
from bootstrap.rpm.listing import Listing
from bootstrap.rpm.packages import Package


@dataclass(frozen=True)
class Request:
    """What to install: package names (or provides) and comps group ids."""

    names: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    weak: bool = False
    """Install weak dependencies (Recommends, Supplements) too; dnf's install_weak_deps."""


class _Pool:
    """A libsolv pool holding the listings (in order: the first repository's package wins a tie, as in dnf), each
    solvable mapped back to its record; the packages `excluded` names leave out are not considered."""

    def __init__(self, listings: Sequence[tuple[str, Listing]], arch: str, excluded: Callable[[str], bool]) -> None:
        self.pool = listing.new_pool(arch)
        self.records: dict[int, Package] = {}
        for name, one in listings:
            self.records.update(listing.load(self.pool, name, one))
        self.pool.installed = self.pool.add_repo("@System")
        left_out = {sid for sid, pkg in self.records.items() if excluded(pkg.name)}
        if left_out:
            self.pool.set_considered_list([sid for sid in self.records if sid not in left_out])
        self.pool.addfileprovides()
        self.pool.createwhatprovides()


def _names(request: Request, groups: dict[str, Group]) -> list[str]:
    names = list(request.names)
    for gid in request.groups:
        group = groups.get(gid)
        if group is None:
            raise ResolveError(f"no group {gid!r} in the repositories", f"groups there: {', '.join(sorted(groups))}")
        names += group.installed()
    return names


def resolve(
    listings: Sequence[tuple[str, Listing]],
    groups: dict[str, Group],
    request: Request,
    arch: str,
    excluded: Callable[[str], bool] = lambda name: False,
) -> list[Package]:
    """The packages to install for `request` on `arch` from the repositories' `listings` (by repository id), sorted
    by name and architecture; a package whose name `excluded` takes is never installed. Names of a group that
    no package provides are skipped (as dnf does); a name asked for directly must exist."""
    p = _Pool(listings, arch, excluded)
    jobs = []
    direct = set(request.names)
    for name in _names(request, groups):
        flags = solv.Selection.SELECTION_NAME | solv.Selection.SELECTION_PROVIDES | solv.Selection.SELECTION_DOTARCH
        flags |= solv.Selection.SELECTION_FILELIST  # a path asked for: its package, as dnf finds it
        sel = p.pool.select(name, flags)
        if sel.isempty():
            if name in direct and not p.pool.select(name, flags | solv.Selection.SELECTION_WITH_DISABLED).isempty():
                raise ResolveError(f"{name!r} is excluded", "take it out of the recipe's packages.exclude or request")
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
