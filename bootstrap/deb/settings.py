"""What the deb family takes from a plan (filled in by the family registry, `bootstrap.build.families`)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bootstrap.deb.distros import DistroInfo
from bootstrap.deb.extra import ExtraSource
from bootstrap.deb.mirrors import Mirrors
from bootstrap.deb.resolve import Request
from bootstrap.family import model
from bootstrap.host.cache import Cache


@dataclass(frozen=True)
class DebSettings:
    """Everything the deb family takes from a plan."""

    distro: DistroInfo
    suite: str
    components: tuple[str, ...]
    mirrors: Callable[[str], Mirrors]
    """The mirrors serving an architecture."""
    keyrings: tuple[Path, ...]
    signers: frozenset[str]
    extra: tuple[ExtraSource, ...]
    cache: Cache
    insecure: bool
    check_valid_until: bool
    offline: bool
    derived_cache: bool
    request: Request
    """The recipe's request (its includes, as the release built has them)."""
    phase: Request
    """The required phase (the recipe's priorities and Essential, without its includes)."""
    path_exclude: tuple[str, ...]
    path_include: tuple[str, ...]
    keep_directories: tuple[str, ...]
    native_tools: bool
    """Run a foreign tree's maintainer scripts' tools natively when the host's builds of them exist."""
    fetch: Callable[[Sequence[model.Package]], dict[str, Path]]
    """Fetch package files into the cache, checked against their index (the generic download)."""
