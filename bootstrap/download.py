"""Parallel package downloads into the content-addressed cache, each file checked against its index."""

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from bootstrap import http
from bootstrap.cache import Cache
from bootstrap.deb.index import Package
from bootstrap.errors import BootstrapError
from bootstrap.log import bars_enabled

WORKERS = 6


def fetch_all(packages: Sequence[Package], cache: Cache, offline: bool = False) -> dict[str, Path]:
    """Return a cached, checksum-verified .deb path for each package name, downloading what is missing."""
    missing = [p for p in packages if not cache.has(p.sha256, p.size)]
    if missing and offline:
        names = ", ".join(p.name for p in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise BootstrapError(
            f"--offline: {len(missing)} package(s) are not in the cache ({names})",
            "run once without --offline to fill the cache",
        )
    total = sum(p.size for p in missing)
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        desc="download",
        disable=not bars_enabled() or not missing,
        leave=False,
    ) as bar:

        def one(pkg: Package) -> None:
            with cache.locked(pkg.sha256):
                if cache.has(pkg.sha256, pkg.size):
                    bar.update(pkg.size)
                    return
                tmp = cache.temp(pkg.name)
                http.download(pkg.url, tmp, progress=bar.update, size=pkg.size)
                cache.adopt(tmp, pkg.sha256, pkg.url)

        if missing:
            with ThreadPoolExecutor(max_workers=WORKERS) as pool:
                for future in [pool.submit(one, p) for p in missing]:
                    future.result()
    return {p.name: cache.blob(p.sha256) for p in packages}
