"""A package of an RPM repository as its metadata describes it: identity, where it is, what it relates to."""

from dataclasses import dataclass

FLAGS = {"EQ": "=", "LT": "<", "LE": "<=", "GT": ">", "GE": ">="}
"""primary.xml's comparison flags and the operators of a spec file."""


@dataclass(frozen=True)
class Dep:
    """One entry of a relation (provides, requires...): a name, a rich expression `(a or b)`, or a file path,
    with an optional comparison against epoch:version-release."""

    name: str
    flags: str = ""
    """EQ, LT, LE, GT, GE, or "" for no version."""
    epoch: str = ""
    version: str = ""
    release: str = ""
    pre: bool = False
    """A requirement of the scriptlets (`Requires(pre)`): needed before the package is installed."""

    @property
    def evr(self) -> str:
        epoch = f"{self.epoch}:" if self.epoch not in ("", "0") else ""
        release = f"-{self.release}" if self.release else ""
        return f"{epoch}{self.version}{release}"

    def text(self) -> str:
        """As a spec file writes it: `name >= 1:2.0-3`."""
        return f"{self.name} {FLAGS[self.flags]} {self.evr}" if self.flags in FLAGS else self.name


RELATIONS = ("provides", "requires", "recommends", "suggests", "supplements", "enhances", "obsoletes", "conflicts")
"""The relations primary.xml lists (`rpm:provides`...), in the order of `Package`'s fields."""


@dataclass(frozen=True)
class Package:
    """One binary package of a repository's primary.xml (its files completed from filelists.xml)."""

    name: str
    epoch: int
    version: str
    release: str
    arch: str
    location: str
    """Its path under the repository's base URL."""
    sha256: str
    size: int
    provides: tuple[Dep, ...] = ()
    requires: tuple[Dep, ...] = ()
    recommends: tuple[Dep, ...] = ()
    suggests: tuple[Dep, ...] = ()
    supplements: tuple[Dep, ...] = ()
    enhances: tuple[Dep, ...] = ()
    obsoletes: tuple[Dep, ...] = ()
    conflicts: tuple[Dep, ...] = ()
    files: tuple[str, ...] = ()
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
        return f"{self.name}-{self.epoch}:{self.version}-{self.release}.{self.arch}"

    def relation(self, name: str) -> tuple[Dep, ...]:
        deps: tuple[Dep, ...] = getattr(self, name)
        return deps
