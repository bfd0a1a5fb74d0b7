"""THE family registry: which package family builds a distribution, and the one place outside a family's own
package that imports it. The generic build asks `family_for(plan)` for a `bootstrap.family.interface.Family`;
recipe and plan take the distribution table (names, keyrings, mirrors, scriptless accounts) from here.

A leaf of `bootstrap.build`: it imports no other build module but the download, so recipe and plan can import
it; it sees a plan through `PlanView`, which `bootstrap.build.plan.Plan` satisfies."""

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from bootstrap.build import download
from bootstrap.deb import mirrors, releases
from bootstrap.deb.archive import ExtraSource
from bootstrap.deb.distros import DISTROS, MERGED_USR_DIRS, SCRIPTLESS_GROUPS, SCRIPTLESS_USERS, Distro, DistroInfo
from bootstrap.deb.dpkgdb import DpkgFiles
from bootstrap.deb.family import DebFamily
from bootstrap.deb.mirrors import Mirrors
from bootstrap.deb.resolve import Request
from bootstrap.deb.settings import DebSettings
from bootstrap.deb.trust import extra_sources, keyrings_for
from bootstrap.family.interface import Family, PackageDatabase
from bootstrap.host.cache import Cache


class RecipeView(Protocol):
    """What a family reads of a recipe."""

    @property
    def components(self) -> tuple[str, ...]: ...
    @property
    def priorities(self) -> tuple[str, ...]: ...
    @property
    def essential(self) -> bool: ...
    @property
    def exclude(self) -> tuple[str, ...]: ...
    @property
    def prefer(self) -> tuple[str, ...]: ...
    @property
    def ignore_depends(self) -> tuple[str, ...]: ...
    @property
    def path_exclude(self) -> tuple[str, ...]: ...
    @property
    def path_include(self) -> tuple[str, ...]: ...
    @property
    def keep_directories(self) -> tuple[str, ...]: ...
    def includes(self, codename: str) -> tuple[str, ...]: ...


class PlanView(Protocol):
    """What a family reads of a plan."""

    @property
    def recipe(self) -> RecipeView: ...
    @property
    def distro(self) -> DistroInfo: ...
    @property
    def suite(self) -> str: ...
    @property
    def keyrings(self) -> tuple[Path, ...]: ...
    @property
    def signers(self) -> frozenset[str]: ...
    @property
    def extra(self) -> tuple[ExtraSource, ...]: ...
    @property
    def cache(self) -> Cache: ...
    @property
    def insecure(self) -> bool: ...
    @property
    def check_valid_until(self) -> bool: ...
    @property
    def offline(self) -> bool: ...
    @property
    def derived_cache(self) -> bool: ...
    @property
    def native_tools(self) -> bool: ...
    def mirrors_for(self, arch: str) -> Mirrors: ...


def request_for(recipe: RecipeView, codename: str) -> Request:
    """The deb resolver's request for a recipe."""
    r = recipe
    return Request(r.priorities, r.essential, r.includes(codename), r.exclude, r.prefer, r.ignore_depends)


def _deb(plan: PlanView) -> DebFamily:
    r = plan.recipe
    return DebFamily(
        DebSettings(
            distro=plan.distro,
            suite=plan.suite,
            components=r.components,
            mirrors=plan.mirrors_for,
            keyrings=plan.keyrings,
            signers=plan.signers,
            extra=plan.extra,
            cache=plan.cache,
            insecure=plan.insecure,
            check_valid_until=plan.check_valid_until,
            offline=plan.offline,
            derived_cache=plan.derived_cache,
            request=lambda codename: request_for(r, codename),
            phase=Request(r.priorities, r.essential, (), r.exclude, r.prefer),
            path_exclude=r.path_exclude,
            path_include=r.path_include,
            keep_directories=r.keep_directories,
            native_tools=plan.native_tools,
            fetch=lambda packages: download.fetch_all(packages, plan.cache, plan.offline),
        )
    )


FAMILIES: Mapping[str, Callable[[PlanView], Family]] = {"deb": _deb}
"""Each family: made for a plan."""
DISTRIBUTIONS: Mapping[Distro, str] = {Distro.DEBIAN: "deb", Distro.UBUNTU: "deb"}
"""Which family builds each distribution."""
DATABASES: tuple[PackageDatabase, ...] = (DpkgFiles(),)
"""Each family's package database, as `bootstrap inspect` reads it from a layer."""
ARCHES: frozenset[str] = frozenset(MERGED_USR_DIRS)
"""The architectures images are built for."""


def family_for(plan: PlanView) -> Family:
    """The package family that builds the plan's distribution, made for the plan."""
    return FAMILIES[DISTRIBUTIONS[plan.distro.name]](plan)


# The distribution table and the trust and mirror look-ups the recipe and the plan need (deb family data).
discover_mirrors = mirrors.discover
apt_dir = mirrors.apt_dir
resolve_suite = releases.resolve

__all__ = [
    "ARCHES",
    "DATABASES",
    "DISTRIBUTIONS",
    "DISTROS",
    "FAMILIES",
    "SCRIPTLESS_GROUPS",
    "SCRIPTLESS_USERS",
    "Distro",
    "DistroInfo",
    "ExtraSource",
    "Mirrors",
    "PlanView",
    "apt_dir",
    "discover_mirrors",
    "extra_sources",
    "family_for",
    "keyrings_for",
    "request_for",
    "resolve_suite",
]
