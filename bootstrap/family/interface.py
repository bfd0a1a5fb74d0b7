"""The family interface: what the generic build asks of a package family (deb today). One implementation per
family, made for a plan by the family registry (`bootstrap.build.families`); the generic layers hold only
these protocols and the neutral model, never the family's own types.

    family.open(arch) -> Archive          indexes and their trust
    family.resolve(archive) -> Selection  the recipe's request; or family.pinned(archive, pins), from a lock
    family.job(archive, selection, files, target) -> Job
    job.unpack / native_tools / configure / finish / package_database / notices
"""

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bootstrap.family.model import Notice, Package, Pin, Source
from bootstrap.host.overrides import Overrides
from bootstrap.host.sandbox import Sandbox


class Archive(Protocol):
    """One architecture's verified archive state."""

    @property
    def codename(self) -> str: ...

    @property
    def suite(self) -> str: ...

    @property
    def insecure(self) -> bool:
        """Read without checking signatures (--insecure)."""
        ...

    @property
    def date(self) -> int:
        """The archive's timestamp (the default epoch of an image)."""
        ...

    @property
    def sources(self) -> tuple[Source, ...]:
        """Every verified source, as the lock records them."""
        ...


class Selection(Protocol):
    """A resolved package set."""

    @property
    def packages(self) -> tuple[Package, ...]:
        """Sorted by name."""
        ...

    def names(self) -> list[str]: ...

    def by_name(self) -> dict[str, Package]: ...

    def compare_versions(self, a: str, b: str) -> int:
        """The family's order of versions: negative when `a` is older than `b`, 0 when equal, else positive."""
        ...


@dataclass(frozen=True)
class Target:
    """The tree one platform's build makes."""

    root: Path
    arch: str
    epoch: int
    overrides: Overrides | None = None
    check_kept: bool = True
    """False: what the cache's derived areas kept (decompressed packages) may be taken without checking it again,
    as the layer proves it: the build compares the layer with the settled one this package set gave, and builds
    again, checking everything, when it differs (`bootstrap.build.pipeline.build_platform`)."""


Runnable = Callable[[], AbstractContextManager[Sandbox]]
"""Opens a sandbox for programs of the tree (through an emulator when the architecture is foreign)."""


class Job(Protocol):
    """The family's steps for one platform's tree (each a row of the step table, `bootstrap.build.steps`)."""

    def unpack(self, final: bool) -> None:
        """The packages' files (`final`: nothing will configure them) and, unless final, the package database."""
        ...

    def unpacked_state(self) -> bytes | None:
        """What the job knows after `unpack` beyond the tree it left, for a later build of the same package set to
        start from a copy of that tree (`bootstrap.host.kepttree`); None: the family keeps no tree."""
        ...

    def restore(self, state: bytes) -> bool:
        """Take up a kept tree's `unpacked_state` in place of `unpack` (the tree is at the target's root already);
        False when it does not fit this job's packages (the tree is then not used)."""
        ...

    def native_tools(self, host: str) -> int:
        """For a foreign architecture: the host's builds of the packages' tools for the scripts to run natively;
        how many executables were swapped in (0: everything runs emulated)."""
        ...

    def configure(self, runnable: Runnable) -> None:
        """Run the packages' configuration (maintainer scripts) in the sandbox."""
        ...

    def finish(self) -> None:
        """The distribution's container settings and sources, the slim rules, scrubbing."""
        ...

    def package_database(self) -> None:
        """The package database of a scriptless image, for scanners."""
        ...

    def notices(self) -> dict[str, Notice]:
        """Each package's licences and copyright notices (read from the tree, before packing)."""
        ...

    def script_env(self) -> dict[str, str]:
        """The environment for the recipe's hooks."""
        ...


class PackageDatabase(Protocol):
    """A family's package database as it stands in an image layer: which files each package owns."""

    def owns(self, member: str) -> bool:
        """Whether this layer member (a path without the leading /) lists the files of a package."""
        ...

    def files(self, member: str, data: bytes) -> dict[str, list[str]]:
        """The packages a listing member is of (one for dpkg's `info/NAME.list`, every package for rpm's one
        database file), each with the absolute paths it lists."""
        ...


class Family(Protocol):
    """One package family (deb), made for one plan."""

    @property
    def name(self) -> str: ...

    @property
    def origin(self) -> str:
        """The distribution's vendor name as its images record it (`/etc/dpkg/origins/default` -> `debian`)."""
        ...

    @property
    def locked_password(self) -> str:
        """The password field the family's useradd writes for a new account: locked (`!`; Red Hat's `!!`)."""
        ...

    @property
    def account_backups(self) -> bool:
        """Whether the account files the recipe's accounts change keep what they held before in `<file>-`, as
        the family's official builds leave shadow-utils' backups."""
        ...

    def older_packages_hint(self, distribution: str, date: int) -> str:
        """What to do when the mirror no longer serves packages a lock of `distribution` made as of `date` (Unix
        time) pins: where the family's distributions keep what they dropped."""
        ...

    def open(self, arch: str) -> Archive:
        """Fetch and verify the archive state of `arch` and load its indexes."""
        ...

    def resolve(self, archive: Archive) -> Selection:
        """The package set the recipe asks for."""
        ...

    def pinned(self, archive: Archive, pins: Sequence[Pin]) -> tuple[Selection, list[Pin]]:
        """The exact packages pinned, found in the archive, and the pins it no longer carries."""
        ...

    def unpack_tools(self) -> str:
        """The host's programs and libraries the family's unpack runs, as they are now (each file's identity:
        `bootstrap.host.cache.made_by`): part of a kept tree's key, so that a tree one of them made is not taken
        once it is upgraded."""
        ...

    def job(self, archive: Archive, selection: Selection, files: Mapping[str, Path], target: Target) -> Job:
        """The family's steps over `files` (the fetched package files, by name) into `target`."""
        ...
