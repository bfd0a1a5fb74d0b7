"""What the RPM family takes from a plan (filled in by the family registry, `bootstrap.build.families`)."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bootstrap.host.cache import Cache
from bootstrap.rpm.distros import RpmDistro
from bootstrap.rpm.options import JobOptions
from bootstrap.rpm.resolve import Request


@dataclass(frozen=True)
class RpmSettings:
    distro: RpmDistro
    release: str
    """A release of the distribution's table (`9`, `42`), aliases resolved."""
    mirror: Callable[[str], str]
    """The root of the distribution's tree serving an architecture (the user's mirror)."""
    keyrings: tuple[Path, ...]
    signers: frozenset[str]
    """When set, only these keys vouch for the metadata and the packages."""
    cache: Cache
    insecure: bool
    offline: bool
    derived_cache: bool
    """Whether earlier builds' derived files serve this one (the signature verdicts, `bootstrap.rpm.verdicts`; the
    decompressed payloads, `bootstrap.rpm.expanded`)."""
    repos: tuple[str, ...]
    """The repository ids the build reads (empty: those the release enables)."""
    request: Request
    exclude: tuple[str, ...]
    """Name patterns left out of the repositories before resolving (kickstart's `-name`, dnf's `--exclude`)."""
    options: JobOptions
    """The tree's settings; the repository files are added per build (they name the mirror)."""
    metalink: str = ""
    """The distribution's metalink service, as the user names it ("": none): each repository that has one must
    match it, and the image's repository files name it."""
