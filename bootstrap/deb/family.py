"""The deb family behind the family interface (`bootstrap.family.interface`): what a plan says about a deb
archive (`DebSettings`, filled in by the family registry), the archive and selection as the generic layers
hold them, and the steps for one platform's tree (`job.DebJob`)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from debian.debian_support import version_compare

from bootstrap.deb import archive as archive_mod
from bootstrap.deb import resolve as resolve_mod
from bootstrap.deb.archive import Archive
from bootstrap.deb.job import DebJob
from bootstrap.deb.settings import DebSettings
from bootstrap.errors import BootstrapError
from bootstrap.family import interface, model

NAME = "deb"


@dataclass(frozen=True)
class DebSelection:
    """A resolved set of deb packages; `packages` is the neutral view of them."""

    debs: resolve_mod.Selection

    @cached_property
    def packages(self) -> tuple[model.Package, ...]:
        return tuple(p.neutral() for p in self.debs.packages)

    def names(self) -> list[str]:
        return self.debs.names()

    def by_name(self) -> dict[str, model.Package]:
        return {p.name: p for p in self.packages}

    def compare_versions(self, a: str, b: str) -> int:
        return version_compare(a, b)


def own_archive(archive: interface.Archive) -> Archive:
    if not isinstance(archive, Archive):
        raise BootstrapError(f"not a deb archive: {archive!r}", "report this as a bug")
    return archive


def own_selection(selection: interface.Selection) -> DebSelection:
    if not isinstance(selection, DebSelection):
        raise BootstrapError(f"not a deb package selection: {selection!r}", "report this as a bug")
    return selection


@dataclass(frozen=True)
class DebFamily:
    """The deb family, for one plan."""

    settings: DebSettings

    @property
    def name(self) -> str:
        return NAME

    @property
    def origin(self) -> str:
        return str(self.settings.distro.name)

    @property
    def locked_password(self) -> str:
        """Debian's useradd locks a new account with `!`."""
        return "!"

    @property
    def account_backups(self) -> bool:
        """No: whether Debian's and Ubuntu's official builds keep them is not known here, so their images stay as
        they were."""
        return False

    def older_packages_hint(self, distribution: str, date: int) -> str:
        """A snapshot archive keeps every state of the archive."""
        when = datetime.fromtimestamp(date, UTC).strftime("%Y%m%dT%H%M%SZ")
        return (
            f"build from a snapshot of the archive as of the lock: --mirror <snapshot-mirror-url>/archive/"
            f"{distribution}/{when}/ (and --security-mirror likewise, with --no-check-valid-until)"
        )

    def open(self, arch: str) -> Archive:
        s = self.settings
        s.cache.ensure()
        mirrors = s.mirrors(arch)
        return archive_mod.open_archive(
            s.distro,
            mirrors.main,
            mirrors.security,
            s.suite,
            s.components,
            arch,
            s.keyrings,
            s.cache,
            s.insecure,
            s.check_valid_until,
            s.offline,
            s.extra,
            s.signers,
            s.derived_cache,
        )

    def resolve(self, archive: interface.Archive) -> DebSelection:
        own = own_archive(archive)
        return DebSelection(resolve_mod.resolve(own.index, self.settings.request))

    def pinned(self, archive: interface.Archive, pins: Sequence[model.Pin]) -> tuple[DebSelection, list[model.Pin]]:
        index = own_archive(archive).index
        found, gone = [], []
        for pin in pins:
            match = next((p for p in index.versions(pin.name) if p.version == pin.version and p.arch == pin.arch), None)
            if match is None:
                gone.append(pin)
            else:
                found.append(match)
        return DebSelection(resolve_mod.Selection(tuple(sorted(found, key=lambda p: p.name)))), gone

    def unpack_tools(self) -> str:
        """None: the unpack is bootstrap's own (`bootstrap.deb.unpack`), and Debian builds keep no tree."""
        return ""

    def job(
        self,
        archive: interface.Archive,
        selection: interface.Selection,
        files: Mapping[str, Path],
        target: interface.Target,
    ) -> DebJob:
        return DebJob(self.settings, own_archive(archive), own_selection(selection).debs, dict(files), target)
