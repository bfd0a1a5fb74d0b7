"""Concurrency: six builds at once sharing one empty cache: four suites from the host's real mirror (bookworm,
trixie, sid, testing) and two of the same suite (the fixture archive, through the proxy). All must succeed with
the outputs of builds made one at a time: the fixture pair with the reference build's, each real suite with a
build made afterwards alone (pinned to the same packages with --lock, so that a mirror update in between cannot
change the answer)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from bootstrap.deb.distros import DISTROS
from bootstrap.family.names import Distro
from tests.e2e.conftest import Mirrored
from tests.faults import checks
from tests.faults.conftest import Case, Reference, Run, Site, cli, env_for
from tests.faults.proxy import FaultProxy

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

REAL = ("bookworm", "trixie", "sid", "testing")
BUILDS = (*REAL, "fixture-a", "fixture-b")


@dataclass
class Together:
    runs: dict[str, Run]
    took: float
    cache: Path
    sites: dict[str, Site]


def _real_args(site: Site, suite: str, *extra: str) -> list[str]:
    valid = ["--no-check-valid-until"] if suite in ("sid", "testing") else []
    return ["debian-slim", "--suite", suite, "-o", str(site.out), "-q", "--cache-dir", str(site.cache), *valid, *extra]


@pytest.fixture(scope="module")
def together(
    mirrored: Mirrored, mirror: FaultProxy, reference: Reference, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Together]:
    mirror.clear()
    cache = tmp_path_factory.mktemp("shared") / "cache"
    sites = {}
    for name in BUILDS:
        site = Site(tmp_path_factory.mktemp(name), mirrored, mirror.url)
        site.cache = cache
        sites[name] = site

    def one(name: str) -> Run:
        site = sites[name]
        if name in REAL:
            return Run(cli(*_real_args(site, name), env=env_for(site.scratch, BOOTSTRAP_NET_TIMEOUT="30")), site.out)
        return site.build(BOOTSTRAP_NET_TIMEOUT="30")

    started = time.monotonic()
    with ThreadPoolExecutor(len(BUILDS)) as pool:
        runs = dict(zip(BUILDS, pool.map(one, BUILDS), strict=True))
    yield Together(runs, time.monotonic() - started, cache, sites)


def _keyrings(mirrored: Mirrored) -> list[Path]:
    return [*(k for k in DISTROS[Distro.DEBIAN].keyrings if k.is_file()), mirrored.repo.keyring]


def test_six_builds_share_one_cache(case: Case, together: Together, mirrored: Mirrored, reference: Reference) -> None:
    case.describe(
        "concurrency",
        "6 builds at once on one empty cache: bookworm, trixie, sid, testing (real mirror) and the same suite twice",
        "all succeed; the cache is sound; nothing left behind",
    )
    failed = {n: r.proc.stderr for n, r in together.runs.items() if r.proc.returncode != 0}
    assert not failed, failed
    assert checks.bad_cache_entries(together.cache, _keyrings(mirrored)) == []
    for site in together.sites.values():
        assert list(site.scratch.iterdir()) == [] and checks.staging_left(site.out) == []
    blobs = len(list((together.cache / "sha256").iterdir()))
    case.saw(f"6 of 6 succeeded in {together.took:.0f} s together; {blobs} blobs in the shared cache, all sound")


def test_same_suite_twice_equals_the_serial_build(case: Case, together: Together, reference: Reference) -> None:
    case.describe(
        "concurrency",
        "two builds of the same suite at the same time, sharing the cache (and the same downloads)",
        "both identical to the build made alone",
    )
    for name in ("fixture-a", "fixture-b"):
        run = together.runs[name]
        assert run.proc.returncode == 0, run.proc.stderr
        assert run.digest == reference.digest
        assert case.same_bytes(run.out, reference.out), f"{name} differs from the reference"
    case.saw(f"both gave {reference.digest[:19]}..., every output byte-identical")


def test_each_suite_equals_its_serial_build(case: Case, together: Together, tmp_path: Path) -> None:
    case.describe(
        "concurrency",
        "each real suite of the concurrent run built again alone with the same cache (pinned by its lock)",
        "outputs identical to the concurrent build's",
    )
    started = time.monotonic()
    for suite in REAL:
        run = together.runs[suite]
        assert run.proc.returncode == 0, run.proc.stderr
        site = together.sites[suite]
        alone = Site(tmp_path / suite, site.mirrored, site.mirror_url)
        alone.cache = together.cache
        proc = cli(*_real_args(alone, suite, "--lock", str(run.out / "lock.json")), env=env_for(alone.scratch))
        assert proc.returncode == 0, proc.stderr
        assert case.same_bytes(alone.out, run.out), f"{suite}: the concurrent build differs from the serial one"
    case.saw(f"4 of 4 suites byte-identical to their serial builds ({time.monotonic() - started:.0f} s serially)")
