"""Mirror faults: a build through the fault proxy in front of the fixture archive.

Transient faults (each file misbehaves on its first request, then is healthy) must be retried and give the same
bytes as the undisturbed build; persistent ones must fail in bounded time with one line naming the URL and the
cause, leaving the previous output and the cache sound."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import Mirrored
from tests.faults.conftest import Case, Reference, Run, Site, cli, env_for
from tests.faults.proxy import Fault, FaultProxy
from tests.fixtures.repo import rfc2822

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

DEB = r"\.deb$"
INDEX = r"/(by-hash/SHA256/[0-9a-f]+|Packages(\.gz|\.xz)?)$"
ANY = r"(\.deb|/InRelease|/by-hash/SHA256/[0-9a-f]+|/Packages(\.gz|\.xz)?)$"
BIG = r"/libc6_[^/]*\.deb$"
"""The largest package of the set: the one a stall or a cut hits hardest."""

TRANSIENT: dict[str, tuple[Callable[[], list[Fault]], str]] = {
    "5xx": (
        lambda: [
            Fault("status", INDEX, status=500, per_path=2, times=None, headers={"Retry-After": "1"}),
            Fault("status", ANY, status=503, per_path=1, times=None),
        ],
        "503 on the first request of every file; 500 with Retry-After: 1 twice for every index; then healthy",
    ),
    "reset": (
        lambda: [Fault("reset", DEB, at=0.5, per_path=1, times=None)],
        "connection reset (RST) half-way through the body of every package, once",
    ),
    "truncate": (
        lambda: [
            Fault("short", INDEX, at=0.6, per_path=1, times=None),
            Fault("truncate", ANY, at=0.3, per_path=1, times=None),
        ],
        "every file closed after 30% of its announced length, once; every index first cut at 60% and "
        "announced with that shorter length",
    ),
    "stall": (
        lambda: [
            Fault("stall", BIG, at=0.5, per_path=1, times=None, hold=60),
            Fault("drip", DEB, per_path=1, times=2, interval=0.5),
        ],
        "slow loris: half the largest package then nothing for 60 s; 1 byte every 0.5 s for two others; once",
    ),
    "wrong": (
        lambda: [Fault("wrong", r"(\.deb|/by-hash/SHA256/[0-9a-f]+)$", per_path=1, times=None)],
        "wrong bytes (16 flipped, same length) for every package and index, once",
    ),
}


@pytest.mark.parametrize("name", list(TRANSIENT))
def test_transient(name: str, case: Case, faulty: FaultProxy, site: Site, reference: Reference) -> None:
    faults, what = TRANSIENT[name]
    case.describe("mirror", what, "retried with backoff; the build succeeds; same bytes as the clean build")
    for fault in faults():
        faulty.add(fault)
    site.seed(reference.cache)
    started = time.monotonic()
    run = site.build()
    took = time.monotonic() - started
    assert run.proc.returncode == 0, run.proc.stderr
    injected = faulty.count()
    assert injected > 0, "the fault never fired"
    assert run.digest == reference.digest
    assert case.same_bytes(site.out, reference.out), "the outputs differ from the clean build"
    assert site.bad_cache() == []
    resumed = sum(1 for s in faulty.seen if s.range)
    if name in ("reset", "stall"):
        assert resumed > 0, "the cut downloads were not resumed"
    case.saw(
        f"{injected} faulty answers of {len(faulty.seen)} requests"
        + (f", {resumed} resumed (Range)" if resumed else "")
        + f"; built in {took:.0f} s; digest identical"
    )


def test_thirty_percent(case: Case, faulty: FaultProxy, site: Site, reference: Reference) -> None:
    case.describe(
        "mirror",
        "30% of all requests fail at random: 500, 503, reset mid-body or closed early (at most 2 in a row per file)",
        "every failure retried; the image digest equals the clean build's",
    )
    faulty.add(Fault("random", ".*", rate=0.3, max_run=2, times=None))
    site.seed(reference.cache)
    run = site.build()
    assert run.proc.returncode == 0, run.proc.stderr
    share = faulty.count() / len(faulty.seen)
    assert 0.2 <= share <= 0.4, f"{share:.0%} of requests failed"
    assert run.digest == reference.digest, "another image digest"
    assert case.same_bytes(site.out, reference.out)
    assert site.bad_cache() == []
    case.saw(f"{faulty.count()} of {len(faulty.seen)} requests failed ({share:.0%}); digest identical")


PERSISTENT: dict[str, tuple[Callable[[], Fault], str, str]] = {
    "500": (lambda: Fault("status", BIG, status=500, times=None), "500 on the largest package, always", "500"),
    "503-inrelease": (
        lambda: Fault("status", r"/InRelease$", status=503, times=None),
        "503 on InRelease, always",
        "503",
    ),
    "reset": (
        lambda: Fault("reset", BIG, at=0.5, times=None),
        "connection reset half-way through the rest of the largest package, always",
        "connection reset",
    ),
    "truncate": (
        lambda: Fault("truncate", INDEX, at=0.5, times=None),
        "an index closed after half its announced length, always",
        "connection closed early",
    ),
    "short": (
        lambda: Fault("short", BIG, at=0.5, times=None),
        "the largest package cut at half, announced with that shorter length, always",
        "ended after",
    ),
    "drip": (
        lambda: Fault("drip", BIG, times=None, interval=0.5),
        "slow loris on the largest package: 1 byte every 0.5 s, always",
        "stalled",
    ),
    "stall": (
        lambda: Fault("stall", BIG, at=0.5, times=None, hold=120),
        "the largest package stops after half its body, always (no bytes, connection open)",
        "read timed out",
    ),
    "wrong": (
        lambda: Fault("wrong", BIG, times=None),
        "wrong bytes for the largest package, always",
        "checksum mismatch",
    ),
    "redirect": (
        lambda: Fault("redirect", r"/InRelease$", times=None),
        "InRelease redirects to itself, in a loop",
        "redirects",
    ),
}

INRELEASE = {
    "stale": ("a stale InRelease (validly signed, dated a day before the one verified last time)", "rollback"),
    "future": ("a future-dated InRelease (validly signed, dated tomorrow)", "ahead of this machine's clock"),
    "expired": ("an expired InRelease (validly signed, Valid-Until yesterday)", "expired"),
}


@dataclass
class Failed:
    site: Site
    proxy: FaultProxy
    run: Run
    took: float


@pytest.fixture(scope="module")
def failed_builds(
    mirrored: Mirrored, reference: Reference, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Failed]]:
    """Every persistent fault and bad InRelease, each its own build through its own proxy, all at once (they
    spend most of their time waiting between retries); the tests then look at one each."""
    proxies: list[FaultProxy] = []

    def one(name: str) -> Failed:
        proxy = FaultProxy(mirrored.url)
        proxies.append(proxy)
        site = Site(tmp_path_factory.mktemp(f"failed-{name}"), mirrored, proxy.url)
        site.previous(reference.out)
        if name in PERSISTENT:
            proxy.add(PERSISTENT[name][0]())
        else:
            proxy.add(Fault("replace", r"/dists/(fixture|stable)/InRelease$", body=_inrelease(name, site), times=None))
        started = time.monotonic()
        # A bad InRelease is refused at once; its build keeps the default read window, so that a machine loaded
        # by the other builds here cannot make the proxy's answer look stalled and retried (counted twice).
        run = site.build() if name in PERSISTENT else site.build(BOOTSTRAP_NET_TIMEOUT="30")
        return Failed(site, proxy, run, time.monotonic() - started)

    names = [*PERSISTENT, *INRELEASE]
    with ThreadPoolExecutor(len(names)) as pool:
        done = dict(zip(names, pool.map(one, names), strict=True))
    yield done
    for proxy in proxies:
        proxy.stop()


@pytest.mark.parametrize("name", list(PERSISTENT))
def test_persistent(name: str, case: Case, failed_builds: dict[str, Failed]) -> None:
    _, what, words = PERSISTENT[name]
    case.describe("mirror", what, f"fails in bounded time: one line naming the URL and '{words}'; nothing lost")
    failed = failed_builds[name]
    error = failed.site.assert_clean_failure(failed.run, words)
    assert re.search(r"https?://127\.0\.0\.1:\d+/\S+", error), f"no URL in: {error}"
    assert failed.took < 60, f"took {failed.took:.0f} s"
    case.saw(f"after {failed.took:.0f} s: {error}")


def _resigned(site: Site, **fields: str) -> bytes:
    """The fixture suite's Release with some fields changed, signed again by the archive key."""
    text = (site.mirrored.repo.dist_dir("fixture") / "Release").read_text()
    changed = {k.replace("_", "-"): v for k, v in fields.items()}
    lines = text.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("Date:"))
    lines[at:at] = [f"{k}: {v}" for k, v in changed.items()]
    lines = [line for i, line in enumerate(lines) if i < at + len(changed) or line.split(":", 1)[0] not in changed]
    key = site.mirrored.repo.key
    assert key is not None
    return key.clearsign(("\n".join(lines) + "\n").encode())


def _release_date(site: Site) -> dt.datetime:
    text = (site.mirrored.repo.dist_dir("fixture") / "Release").read_text()
    stamp = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Date:"))
    return dt.datetime.strptime(stamp.replace("UTC", "+0000"), "%a, %d %b %Y %H:%M:%S %z")


def _inrelease(name: str, site: Site) -> bytes:
    """The InRelease to serve instead of the archive's (for "stale", after a first run verified the real one)."""
    now = dt.datetime.now(dt.UTC)
    if name == "stale":
        lock_args = ["lock", "debian-slim", "-o", str(site.root / "lock.json"), *site.args()[4:]]
        locked = cli(*lock_args, env=env_for(site.scratch))
        assert locked.returncode == 0, locked.stderr
        return _resigned(site, Date=rfc2822(_release_date(site) - dt.timedelta(days=1)))
    if name == "future":
        return _resigned(site, Date=rfc2822(now + dt.timedelta(days=1)))
    return _resigned(site, Valid_Until=rfc2822(now - dt.timedelta(days=1)))


@pytest.mark.parametrize("name", list(INRELEASE))
def test_inrelease(name: str, case: Case, failed_builds: dict[str, Failed]) -> None:
    what, words = INRELEASE[name]
    case.describe("mirror", what, f"refused, not retried: one line naming the URL and '{words}'; nothing lost")
    failed = failed_builds[name]
    error = failed.site.assert_clean_failure(failed.run, words, "/InRelease")
    assert failed.proxy.count("replace") == 1, "fetched more than once"
    case.saw(error)
