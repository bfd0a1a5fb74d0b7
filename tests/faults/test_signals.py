"""Process faults: SIGINT and SIGKILL at each step of a build, then a clean rebuild with the same cache.

The build is stopped where a step starts ($BOOTSTRAP_TEST_PAUSE, see bootstrap/build/pipeline.py `checkpoint`), or,
for the download, while a package is half received (the proxy holds it back). SIGINT must end the build with
exit 130, one line, and nothing left; SIGKILL may leave scratch directories and partial downloads, which the
next build removes. Either way the previous output is intact, the cache holds nothing unsound, and the rebuild
gives the same bytes as the undisturbed build.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import Mirrored
from tests.faults import checks
from tests.faults.conftest import COMPARED, MARKER, Case, Reference, Site, env_for
from tests.faults.proxy import Fault, FaultProxy
from tests.faults.test_mirror import BIG
from tests.fixtures.leftovers import partial_files, temp_files

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

STEPS = ("indexes", "download", "unpack", "configure", "pack", "outputs")


def _start(site: Site, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bootstrap", *site.args()],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run in the background of a shell inherits SIGINT ignored; the build must see it.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(proc: subprocess.Popen[str], ready: object, what: str) -> None:
    deadline = time.monotonic() + 120
    while not ready():  # type: ignore[operator]
        assert proc.poll() is None, f"the build ended before {what}: {proc.communicate()[1]}"
        assert time.monotonic() < deadline, f"the build never reached {what}"
        time.sleep(0.05)


def _left(site: Site) -> list[str]:
    """What a killed build left for the next one to sweep."""
    left = [f"scratch {p.name}" for p in site.scratch.iterdir() if not p.name.endswith(".lock")]
    left += [f"staging {name}" for name in checks.staging_left(site.out) if not name.endswith(".lock")]
    left += [f"cache {p.relative_to(site.cache)}" for p in temp_files(site.cache)]
    return left


def _expected(how: str, step: str) -> tuple[str, str]:
    where = "while a package is half received" if step == "download" else f"as the {step} step starts"
    expected = (
        "exit 130, one line, nothing left" if how == "SIGINT" else "killed; the next build sweeps what it left"
    ) + "; previous output intact; cache sound; the rebuild gives the same bytes"
    return f"{how} {where}", expected


@dataclass
class Outcome:
    happened: str = ""
    identical: bool | None = None
    error: BaseException | None = None


def _interrupt_and_rebuild(how: str, step: str, site: Site, reference: Reference, mirror: FaultProxy) -> Outcome:
    outcome = Outcome()
    try:
        outcome.happened, outcome.identical = _case(how, step, site, reference, mirror)
    except (AssertionError, subprocess.SubprocessError, OSError) as exc:
        outcome.error = exc
    return outcome


def _case(how: str, step: str, site: Site, reference: Reference, mirror: FaultProxy) -> tuple[str, bool]:
    # The same cache as a finished build's (hard links), without the packages when the download is the target.
    site.seed(reference.cache, ("parsed", "expanded", "releases") + (() if step == "download" else ("sha256",)))
    site.previous(reference.out)
    marker = site.root / "paused"
    if step == "download":
        stall = mirror.add(Fault("stall", BIG, at=0.5, hold=30))
        proc = _start(site, env_for(site.scratch))
        _wait_for(proc, stall.hit.is_set, "the download")
        _wait_for(proc, lambda: partial_files(site.cache), "a partial download on disk")
    else:
        proc = _start(site, env_for(site.scratch, BOOTSTRAP_TEST_PAUSE=f"{step}:{marker}"))
        _wait_for(proc, marker.exists, f"the {step} step")
    proc.send_signal(getattr(signal, how))
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert checks.snapshot(site.out) == site.before, "the previous output was changed"
    assert checks.mounts_under(site.root) == [], "a mount was left"
    deadline = time.monotonic() + 10
    while checks.processes_mentioning(str(site.root)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert checks.processes_mentioning(str(site.root)) == [], "a process outlived the build"
    left: list[str] = []
    if how == "SIGINT":
        errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert proc.returncode == 130, stderr
        assert len(errors) == 1 and "interrupted" in errors[0] and "Traceback" not in stderr, stderr
        site.assert_nothing_left()
        exit_text = f"exit 130, '{errors[0]}'"
    else:
        assert proc.returncode == -signal.SIGKILL
        left = _left(site)
        unsound = [p for p in site.bad_cache() if not p.startswith(("temporary file", "partial file"))]
        assert unsound == [], "the cache holds entries that fail their verification"
        exit_text = "killed"
    again = site.build()
    assert again.proc.returncode == 0, again.proc.stderr
    assert not (site.out / MARKER).exists(), "the rebuild did not replace the output"
    identical = all((site.out / n).read_bytes() == (reference.out / n).read_bytes() for n in COMPARED)
    assert identical, "the rebuild differs from the undisturbed build"
    site.before = checks.snapshot(site.out)
    site.assert_nothing_left()
    swept = f"; the rebuild swept what was left ({', '.join(_kinds(left))})" if left else ""
    return f"{exit_text}; previous output intact{swept}; rebuild identical", identical


CASES = [(how, step) for how in ("SIGINT", "SIGKILL") for step in STEPS]


@pytest.fixture(scope="module")
def interrupted(
    mirrored: Mirrored, mirror: FaultProxy, reference: Reference, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[tuple[str, str], Outcome]]:
    """Every case, two at a time (the machine has two cores); the two download cases, which both stall the
    same package at the proxy, are first and last so they never overlap."""
    mirror.clear()
    order = sorted(CASES, key=lambda c: (c[1] == "download" and c[0] == "SIGKILL", c[1] != "download"))

    def one(c: tuple[str, str]) -> Outcome:
        site = Site(tmp_path_factory.mktemp(f"{c[0]}-{c[1]}"), mirrored, mirror.url)
        return _interrupt_and_rebuild(*c, site, reference, mirror)

    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(order, pool.map(one, order), strict=True))
    mirror.clear()
    yield done


@pytest.mark.parametrize(("how", "step"), CASES, ids=[f"{h}-{s}" for h, s in CASES])
def test_signal(how: str, step: str, case: Case, interrupted: dict[tuple[str, str], Outcome]) -> None:
    case.describe("process", *_expected(how, step))
    outcome = interrupted[(how, step)]
    if outcome.identical is not None:
        case.compared, case.identical = 1, int(outcome.identical)
    if outcome.error is not None:
        raise outcome.error
    case.saw(outcome.happened)


def _kinds(left: list[str]) -> list[str]:
    kinds: dict[str, int] = {}
    for item in left:
        kind = item.split()[0]
        if kind == "cache" and item.endswith(".part"):
            kind = "partial download"
        kinds[kind] = kinds.get(kind, 0) + 1
    return [f"{n} {k}" for k, n in kinds.items()]
