"""What a build hands its records: neutral facts, filled by the pipeline (`bootstrap.build.pipeline`).

Nothing here knows the recipe type, the plan or a package family: the recipe is its dict, the settings are
plain values, and each platform's packages and copyright notices are whatever the family gives (the record
writers read them; `PackageFacts` is all that the provenance and the package list need of a package).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from bootstrap.image import oci
from bootstrap.image.layer import Layer
from bootstrap.records import links
from bootstrap.records.lock import Lock
from bootstrap.records.system import OperatingSystem


class PackageFacts(Protocol):
    """What the records read of an installed package besides what the SBOM writers read."""

    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def arch(self) -> str: ...
    @property
    def url(self) -> str: ...
    @property
    def sha256(self) -> str: ...
    @property
    def dist(self) -> str: ...


PackageT = TypeVar("PackageT", bound=PackageFacts, covariant=True)
NoticeT = TypeVar("NoticeT", covariant=True)


@dataclass(frozen=True)
class Settings:
    """How the build was asked for: the resolved recipe (as recorded in build.json) and the build's options."""

    recipe: Mapping[str, Any]
    """The resolved recipe as a dict (`Recipe.as_dict()`); its inputs' digests are in each lock."""
    recipe_name: str
    distribution: str
    suite: str
    arches: tuple[str, ...]
    mirror: str
    security_mirror: str
    compression: str
    from_lock: bool
    insecure: bool
    sbom_formats: tuple[str, ...]
    vendor: str = ""
    """Who supplies the image (the recipe's `org.opencontainers.image.vendor` label), for the SBOMs."""
    records_url: str = links.DEFAULT
    """The base of the records' build type, builder id and SPDX namespaces (`links.base_url`)."""
    key_id: str = ""
    """The id of the public key whose private half signed the records (`--sign-key`); empty: not signed."""


@dataclass(frozen=True)
class Platform(Generic[PackageT, NoticeT]):
    """One architecture's part of a build."""

    arch: str
    lock: Lock
    image: oci.Image
    packages: tuple[PackageT, ...]
    """The installed packages, sorted by name."""
    notices: Mapping[str, NoticeT]
    """What each package's copyright file says (licences, notices), for the SBOM."""
    timings: dict[str, float]
    native_tools: int = 0
    """Foreign executables that ran natively during configure."""
    system: OperatingSystem | None = None
    """The operating system the tree's os-release names; None for a tree without one."""

    @property
    def layer(self) -> Layer:
        return self.image.layer


@dataclass(frozen=True)
class Result(Generic[PackageT, NoticeT]):
    """A finished build: where it went, what it is, and how it was asked for."""

    output: Path
    tag: str
    codename: str
    epoch: int
    index_digest: str
    platforms: tuple[Platform[PackageT, NoticeT], ...]
    settings: Settings

    @property
    def first(self) -> Platform[PackageT, NoticeT]:
        return self.platforms[0]

    @property
    def multi(self) -> bool:
        """Several platforms: per-architecture files carry the architecture in their names."""
        return len(self.platforms) > 1

    @property
    def manifest_digest(self) -> str:
        """What a registry serves under the tag: the manifest of a single-architecture image, else the index."""
        return self.first.image.manifest.digest if len(self.platforms) == 1 else self.index_digest

    @property
    def lock(self) -> Lock:
        return self.first.lock
