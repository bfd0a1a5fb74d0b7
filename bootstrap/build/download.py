"""Parallel package downloads into the content-addressed cache, each file checked against its index."""

import os
from collections.abc import Sequence
from pathlib import Path

from bootstrap.errors import BootstrapError
from bootstrap.family.model import Package
from bootstrap.host import http
from bootstrap.host.cache import Cache
from bootstrap.host.parallel import map_parallel
from bootstrap.log import bars_enabled

WORKERS = 6
"""Downloads at a time (they wait on the network)."""


def _hashers() -> int:
    """Threads that hash the cached files: one a core (more only contend for them)."""
    return min(WORKERS, os.cpu_count() or 1)


def fetch_all(packages: Sequence[Package], cache: Cache, offline: bool = False) -> dict[str, Path]:
    """Return a cached, checksum-verified .deb path for each package name, downloading what is missing.

    Cached .debs are hashed again (in parallel) before they are trusted; a damaged one is fetched anew."""
    present = map_parallel(lambda p: cache.has(p.sha256, p.size), packages, _hashers())
    missing = [p for p, ok in zip(packages, present, strict=True) if not ok]
    if missing and offline:
        names = ", ".join(p.name for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise BootstrapError(
            f"--offline: {len(missing)} package(s) are not in the cache ({names})",
            "run once without --offline to fill the cache",
        )
    if not missing:
        return {p.name: cache.blob(p.sha256) for p in packages}
    from tqdm import tqdm  # only when something is fetched: it costs every warm build's start otherwise

    with tqdm(
        total=sum(p.size for p in missing),
        unit="B",
        unit_scale=True,
        desc="download",
        disable=not bars_enabled(),
        leave=False,
    ) as bar:

        def one(pkg: Package) -> None:
            def download(tmp: Path) -> str:
                http.download(pkg.url, tmp, progress=bar.update, size=pkg.size, sha256=pkg.sha256)
                return pkg.url

            cache.obtain(pkg.sha256, pkg.size, download)

        map_parallel(one, missing, WORKERS)
    return {p.name: cache.blob(p.sha256) for p in packages}
