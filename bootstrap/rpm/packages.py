"""A package of an RPM repository as its metadata describes it: identity, where it is, who made it. Its relations
and files stay in libsolv's form of the listing (`listing.py`), which the resolver reads."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Package:
    """One binary package of a repository's primary.xml."""

    name: str
    epoch: int
    version: str
    release: str
    arch: str
    location: str
    """Its path under the repository's base URL."""
    sha256: str
    size: int
    sourcerpm: str = ""
    license: str = ""
    vendor: str = ""
    packager: str = ""

    @property
    def evr(self) -> str:
        """epoch:version-release, the epoch left out when it is 0 (as rpm shows it)."""
        return f"{self.epoch}:{self.version}-{self.release}" if self.epoch else f"{self.version}-{self.release}"

    @property
    def nevra(self) -> str:
        """name-epoch:version-release.arch, the epoch always written (how the lock names a package)."""
        return nevra(self.name, self.epoch, self.version, self.release, self.arch)


def nevra(name: str, epoch: int, version: str, release: str, arch: str) -> str:
    """name-epoch:version-release.arch, the epoch always written."""
    return f"{name}-{epoch}:{version}-{release}.{arch}"
