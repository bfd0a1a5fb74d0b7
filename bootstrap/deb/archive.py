"""The archive state a build uses: the verified releases (suite, -updates, -security) and their indexes."""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from bootstrap.deb import index as index_mod
from bootstrap.deb import release as release_mod
from bootstrap.deb.distros import DistroInfo
from bootstrap.deb.extra import ExtraSource
from bootstrap.deb.index import Index, PackagesFile
from bootstrap.deb.release import Release
from bootstrap.family.model import Source as SourceRecord
from bootstrap.host.cache import Cache
from bootstrap.host.parallel import map_parallel
from bootstrap.log import log


@dataclass(frozen=True)
class Source:
    """Where one suite comes from."""

    mirror: str
    dist: str


@dataclass(frozen=True)
class Archive:
    codename: str
    suite: str
    releases: tuple[Release, ...]
    index: Index
    insecure: bool = False
    """The releases were read with --insecure: no signature vouches for them."""
    extra: tuple[Release, ...] = ()
    """Releases of the recipe's own repositories."""

    @property
    def date(self) -> int:
        """The archive's timestamp: the newest Date: of the releases used."""
        return max(r.date for r in (*self.releases, *self.extra))

    @property
    def sources(self) -> tuple[SourceRecord, ...]:
        """Every verified release (the distribution's, then the recipe's repositories'), as the lock records it."""
        return tuple(
            SourceRecord(r.mirror, r.dist, r.suite, r.date, r.inrelease_sha256, f"{r.mirror}/dists/{r.dist}/InRelease")
            for r in (*self.releases, *self.extra)
        )


def sources_for(distro: DistroInfo, main: Release, security_mirror: str) -> list[Source]:
    """The suite itself, plus -updates and -security for releases that have them.

    All are named after `main`'s signed Codename, which `release.fetch` checked: it is the suite asked for,
    or the suite asked for is its Suite (an alias such as `stable`). Each of them is checked the same way.
    """
    out = [Source(main.mirror, main.codename)]
    if distro.has_updates(main.suite):
        out.append(Source(main.mirror, f"{main.codename}-updates"))
        out.append(Source(security_mirror, f"{main.codename}-security"))
    return out


def open_archive(
    distro: DistroInfo,
    mirror: str,
    security_mirror: str,
    suite: str,
    components: tuple[str, ...],
    arch: str,
    keyrings: tuple[Path, ...],
    cache: Cache,
    insecure: bool = False,
    check_valid_until: bool = True,
    offline: bool = False,
    extra: tuple[ExtraSource, ...] = (),
    signers: frozenset[str] = frozenset(),
    derived: bool = True,
) -> Archive:
    """Fetch and verify every release of the build and load their package indexes (with `signers`, only
    signatures by those keys of the keyrings count; without `derived`, every index is parsed again from the
    index file, checked against its release, instead of taken from the cache's parsed form)."""

    def fetch(source: Source) -> Release:
        return release_mod.fetch(
            source.mirror, source.dist, keyrings, insecure, check_valid_until, cache, offline, signers
        )

    def fetch_extra(job: tuple[ExtraSource, str]) -> Release:
        src, dist = job
        return release_mod.fetch(
            src.url, dist, (src.keyring,), insecure, check_valid_until, cache, offline, src.signers
        )

    def load(job: tuple[Release, str]) -> PackagesFile:
        return index_mod.load(cache, job[0], job[1], arch, derived)

    first = fetch(Source(mirror, suite))
    sources = sources_for(distro, first, security_mirror)
    releases = [first] if first.dist == first.codename else []
    rest = sources[len(releases) :]
    extra_jobs = [(src, dist) for src in extra for dist in src.suites]
    early = [(first, c) for c in components] if releases else []
    # The other releases (mostly a wait on the network and gpgv) are fetched while the first one's indexes load.
    wave: list[Callable[[], Release | PackagesFile]] = [
        *(functools.partial(fetch, s) for s in rest),
        *(functools.partial(fetch_extra, j) for j in extra_jobs),
        *(functools.partial(load, j) for j in early),
    ]
    done = map_parallel(lambda thunk: thunk(), wave, 4)
    releases += cast(list[Release], done[: len(rest)])
    extra_releases = cast(list[Release], done[len(rest) : len(rest) + len(extra_jobs)])
    early_parts = cast(list[PackagesFile], done[len(rest) + len(extra_jobs) :])
    for r in releases:
        log.debug("release %s/%s: %s, dated %s", r.mirror, r.dist, r.suite, r.date)
    jobs = [(r, c) for r in releases for c in components][len(early) :]
    jobs += [(r, c) for (src, _), r in zip(extra_jobs, extra_releases, strict=True) for c in src.components]
    parts = early_parts + map_parallel(load, jobs, 4)
    index = Index([(job[0], pf) for job, pf in zip(early + jobs, parts, strict=True)], arch)
    return Archive(first.codename, first.suite, tuple(releases), index, insecure, tuple(extra_releases))
