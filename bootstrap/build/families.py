"""THE family registry: which package family builds a distribution, and the one place outside a family's own
package that imports it. The generic build asks `family_for(plan)` for a `bootstrap.family.interface.Family`;
recipe and plan take the distribution table (names, keyrings, mirrors, scriptless accounts) from here.

A leaf of `bootstrap.build`: it imports no other build module (the download only when a deb family is made), so
recipe and plan can import it, and nothing of the network's loads before a family is made; it sees a plan
through `PlanView`, which `bootstrap.build.plan.Plan` satisfies."""

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from bootstrap.deb import mirrors, releases
from bootstrap.deb.distros import DISTROS as DEB_DISTROS
from bootstrap.deb.distros import MERGED_USR_DIRS, SCRIPTLESS_GROUPS, SCRIPTLESS_USERS, DistroInfo
from bootstrap.deb.extra import ExtraSource
from bootstrap.deb.mirrors import Mirrors
from bootstrap.errors import BootstrapError, RecipeError
from bootstrap.family.interface import Family, PackageDatabase
from bootstrap.family.names import Distro
from bootstrap.host.cache import Cache
from bootstrap.rpm import locate
from bootstrap.rpm.distros import DISTROS as RPM_DISTROS
from bootstrap.rpm.distros import RpmDistro
from bootstrap.rpm.rpmdb import HOST_TOOL as RPM_TOOL

if TYPE_CHECKING:  # each family's modules load when a plan of that family is made (a build's start is shorter)
    from bootstrap.deb.family import DebFamily
    from bootstrap.deb.resolve import Request
    from bootstrap.deb.trust import Repository
    from bootstrap.rpm.family import RpmFamily

AnyDistro = DistroInfo | RpmDistro
"""A distribution's data, as its family keeps it."""


class RecipeView(Protocol):
    """What a family reads of a recipe."""

    @property
    def components(self) -> tuple[str, ...]: ...
    @property
    def priorities(self) -> tuple[str, ...]: ...
    @property
    def essential(self) -> bool: ...
    @property
    def include(self) -> tuple[str, ...]: ...
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
    @property
    def scripts(self) -> bool: ...
    @property
    def package_groups(self) -> tuple[str, ...]: ...
    @property
    def rpm_repos(self) -> tuple[str, ...]: ...
    @property
    def install_langs(self) -> tuple[str, ...]: ...
    @property
    def nodocs(self) -> bool: ...
    @property
    def weak_deps(self) -> bool: ...
    @property
    def rpm_write(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def rpm_remove(self) -> tuple[str, ...]: ...
    @property
    def rpm_links(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def rpm_append(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def rpm_dates(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def rpm_hardlinks(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def rpm_moves(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def rpm_mask(self) -> tuple[str, ...]: ...
    @property
    def rpm_dirs(self) -> tuple[str, ...]: ...
    @property
    def rpm_modes(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def rpm_tmpfiles(self) -> tuple[str, ...]: ...
    @property
    def tmpfiles_boot(self) -> bool: ...
    @property
    def tmpfiles_in_image(self) -> bool: ...
    @property
    def import_key(self) -> bool: ...
    @property
    def rpm_metalink(self) -> str: ...


class PlanView(Protocol):
    """What a family reads of a plan."""

    @property
    def recipe(self) -> RecipeView: ...
    @property
    def distro(self) -> AnyDistro: ...
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


def request_for(recipe: RecipeView) -> "Request":
    """The deb resolver's request for a recipe."""
    from bootstrap.deb.resolve import Request

    r = recipe
    return Request(r.priorities, r.essential, r.include, r.exclude, r.prefer, r.ignore_depends)


def _bug(plan: PlanView, family: str) -> BootstrapError:
    return BootstrapError(f"{plan.distro.name} is not of the {family} family", "report this as a bug")


def _deb(plan: PlanView) -> "DebFamily":
    from bootstrap.build import download
    from bootstrap.deb.family import DebFamily
    from bootstrap.deb.resolve import Request
    from bootstrap.deb.settings import DebSettings

    r = plan.recipe
    if not isinstance(plan.distro, DistroInfo):
        raise _bug(plan, "deb")
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
            request=request_for(r),
            phase=Request(r.priorities, r.essential, (), r.exclude, r.prefer),
            path_exclude=r.path_exclude,
            path_include=r.path_include,
            keep_directories=r.keep_directories,
            native_tools=plan.native_tools,
            fetch=lambda packages: download.fetch_all(packages, plan.cache, plan.offline),
        )
    )


def _rpm(plan: PlanView) -> "RpmFamily":
    from bootstrap.rpm import resolve as rpm_resolve
    from bootstrap.rpm.family import RpmFamily
    from bootstrap.rpm.options import JobOptions
    from bootstrap.rpm.settings import RpmSettings

    r = plan.recipe
    if not isinstance(plan.distro, RpmDistro):
        raise _bug(plan, "rpm")
    if plan.extra:
        raise RecipeError("[[repositories]] are apt repositories: an RPM recipe cannot use them", "remove them")
    return RpmFamily(
        RpmSettings(
            distro=plan.distro,
            release=plan.suite,
            mirror=lambda arch: plan.mirrors_for(arch).main,
            keyrings=plan.keyrings,
            signers=plan.signers,
            cache=plan.cache,
            insecure=plan.insecure,
            offline=plan.offline,
            derived_cache=plan.derived_cache,
            repos=r.rpm_repos,
            request=rpm_resolve.Request(r.include, r.package_groups, r.weak_deps),
            exclude=r.exclude,
            options=JobOptions(
                r.nodocs,
                r.install_langs,
                r.scripts,
                {k: v.encode() for k, v in r.rpm_write},
                r.rpm_remove,
                dict(r.rpm_links),
                append={k: v.encode() for k, v in r.rpm_append},
                dates=dict(r.rpm_dates),
                hardlinks=dict(r.rpm_hardlinks),
                moves=dict(r.rpm_moves),
                mask=r.rpm_mask,
                dirs=r.rpm_dirs,
                modes={k: int(v, 8) for k, v in r.rpm_modes},
                tmpfiles=r.rpm_tmpfiles,
                tmpfiles_boot=r.tmpfiles_boot,
                tmpfiles_in_image=r.tmpfiles_in_image,
                import_key=r.import_key,
            ),
            metalink=locate.metalink(plan.distro, r.rpm_metalink),
        )
    )


FAMILIES: Mapping[str, Callable[[PlanView], Family]] = {"deb": _deb, "rpm": _rpm}
"""Each family: made for a plan."""
DISTRIBUTIONS: Mapping[Distro, str] = {
    Distro.DEBIAN: "deb",
    Distro.UBUNTU: "deb",
    Distro.CENTOS_STREAM: "rpm",
    Distro.ALMALINUX: "rpm",
    Distro.ROCKYLINUX: "rpm",
    Distro.FEDORA: "rpm",
}
"""Which family builds each distribution."""
DISTROS: Mapping[Distro, AnyDistro] = {**DEB_DISTROS, **RPM_DISTROS}
"""Each distribution's data."""


def databases() -> tuple[PackageDatabase, ...]:
    """Each family's package database, as `bootstrap inspect` reads it from a layer."""
    from bootstrap.deb.dpkgdb import DpkgFiles
    from bootstrap.rpm.rpmdb import RpmDatabase

    return (DpkgFiles(), RpmDatabase())


HOST_TOOLS: tuple[tuple[str, str, str], ...] = (RPM_TOOL,)
"""The host programs a family's builds run, beside the sandbox's: (program, what for, how to install it)."""
ARCHES: frozenset[str] = frozenset(MERGED_USR_DIRS)
"""The architectures images are built for."""


def family_for(plan: PlanView) -> Family:
    """The package family that builds the plan's distribution, made for the plan."""
    return FAMILIES[DISTRIBUTIONS[plan.distro.name]](plan)


def discover_mirrors(
    distro: AnyDistro,
    mirror: str | None,
    security: str | None,
    suite: str = "",
    arch: str = "",
    recipe_mirror: str = "",
    recipe_metalink: str = "",
) -> Mirrors:
    """The mirrors of an architecture: the deb family's discovery, or the RPM tree's root the user gave (none
    with a metalink service: the metalinks list them)."""
    if isinstance(distro, RpmDistro):
        return Mirrors(locate.mirror(distro, mirror, recipe_mirror, locate.metalink(distro, recipe_metalink)), "")
    return mirrors.discover(distro, mirror, security, suite, arch)


def release_names(distro: AnyDistro) -> frozenset[str] | None:
    """The releases a recipe's `[release.<codename>]` tables may name: an RPM distribution's own (its data knows
    every release it builds); None for a deb distribution, whose archive names its releases."""
    return frozenset(distro.releases) if isinstance(distro, RpmDistro) else None


def release_of(distro: AnyDistro, suite: str, tables: Sequence[str]) -> str:
    """The release whose `[release.<codename>]` table a build of `suite` takes (`suite` itself, resolved as
    `resolve_suite` resolves it); a suite only the archive resolves, with tables none of which is keyed by it, is
    refused: which table applies cannot be told before the build."""
    if isinstance(distro, DistroInfo) and suite in distro.archive_aliases and tables and suite not in tables:
        raise RecipeError(
            f"the recipe has tables for releases {', '.join(sorted(tables))}, and suite {suite!r} names a release "
            "only the archive tells",
            "pass --suite CODENAME (for example --suite trixie), or key a table by the suite ([release.stable])",
        )
    return suite


def resolve_suite(distro: AnyDistro, suite: str) -> str:
    """A suite's name as the build uses it (aliases resolved where the table knows them)."""
    if isinstance(distro, RpmDistro):
        return locate.release(distro, suite)
    return releases.resolve(distro.release_table, suite)


def keyrings_for(
    distro: AnyDistro, given: tuple[Path, ...], source: str, archive_keyring: str, archive_signers: Sequence[str]
) -> tuple[tuple[Path, ...], frozenset[str]]:
    """The keyrings that vouch for the distribution's archive or repositories, and the keys pinned among them."""
    if isinstance(distro, RpmDistro):
        return locate.keyrings(distro, given, source, archive_keyring, archive_signers)
    from bootstrap.deb import trust

    return trust.keyrings_for(distro, given, source, archive_keyring, archive_signers)


def extra_sources(source: str, repositories: Sequence["Repository"]) -> tuple[ExtraSource, ...]:
    """A recipe's apt repositories with the keyring that vouches for each (none: nothing of apt's is loaded)."""
    if not repositories:
        return ()
    from bootstrap.deb import trust

    return trust.extra_sources(source, repositories)


apt_dir = mirrors.apt_dir

__all__ = [
    "ARCHES",
    "AnyDistro",
    "DISTRIBUTIONS",
    "DISTROS",
    "FAMILIES",
    "HOST_TOOLS",
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
    "databases",
    "family_for",
    "keyrings_for",
    "request_for",
    "resolve_suite",
]
