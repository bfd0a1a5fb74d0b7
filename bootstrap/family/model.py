"""The neutral package model: a package, its licences and notices, and an archive source, as the lock, the
SBOMs, `changes` and `inspect` read them, whatever family (deb, rpm) the package comes from."""

import re
from dataclasses import dataclass


def license_ref(name: str) -> str:
    """An SPDX `LicenseRef-` id for a licence or text SPDX does not list."""
    return "LicenseRef-" + re.sub(r"[^A-Za-z0-9.\-]", "-", name)


@dataclass(frozen=True)
class Package:
    """One package of an image, as the generic layers see it."""

    name: str
    version: str
    arch: str
    filename: str
    """Where it sits under its mirror (the lock records it)."""
    url: str
    size: int
    sha256: str
    dist: str
    """The suite (repository) it came from: the lock records it, `changes` marks security updates by it."""
    source_name: str
    source_version: str
    maintainer: str = ""
    """`Name <address>` of who maintains it in the distribution: its supplier in an SBOM."""
    purl_type: str = "deb"
    """The package URL type (`pkg:<type>/<distribution>/<name>@<version>?arch=<arch>`)."""

    @property
    def security(self) -> bool:
        """Whether it came from the security suite."""
        return self.dist.endswith("-security")


@dataclass(frozen=True)
class Pin:
    """A package asked for exactly (from a lock): name, version, architecture and the digest it must have."""

    name: str
    version: str
    arch: str
    sha256: str


@dataclass(frozen=True)
class Licence:
    """One licence a package declares."""

    id: str
    """Its SPDX identifier, or a `LicenseRef-` for one SPDX does not list."""
    name: str
    """As the package names it."""
    text: str = ""
    """For a `LicenseRef-`: the text an SBOM carries for it."""


@dataclass(frozen=True)
class Notice:
    """A package's licences and copyright notices, as an SBOM reports them."""

    licences: tuple[Licence, ...]
    """Declared in machine-readable form (empty when the terms are free-form)."""
    copyright: str
    """The copyright notices, one a line (empty when none are named)."""
    text: str
    """The whole terms ("" when the package has none): the licence when none is named."""
    where: str = ""
    """Where the terms are in the image (`/usr/share/doc/NAME/copyright`)."""


NO_NOTICE = Notice((), "", "")


@dataclass(frozen=True)
class Source:
    """One verified source of an archive state (a suite of a mirror), as the lock records it."""

    mirror: str
    dist: str
    suite: str
    date: int
    digest: str
    """sha256 of the signed file that vouches for the source (a deb archive's InRelease)."""
    uri: str = ""
    """Where that signed file is (provenance names it as a dependency of the build)."""
