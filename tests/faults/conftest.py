"""The fault-injection suite: fixtures, and the table it prints at the end of the session.

Every test here is one fault case. It says what it injects and what is expected (`case.describe`), and what
happened (`case.saw`); the table lists every case with its verdict, then the figures and a last line
`N passed, N failed`. `make faults` runs only this directory; `make test` runs it once with everything else.

Builds run the real CLI (`python -m bootstrap`) against the fixture archive of real packages (`mirrored`),
always through the same fault proxy (`mirror`), so every build that succeeds can be compared byte for byte
with the undisturbed `reference` build: the image carries the mirror URL in its apt sources.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Mirrored
from tests.faults import checks
from tests.faults.proxy import FaultProxy

NET_TIMEOUT = "2"
"""$BOOTSTRAP_NET_TIMEOUT for the builds here: a stalled mirror is given up after 2 s instead of 30."""
COMPARED = ("image.tar", "rootfs.tar.gz", "packages.txt", "sbom.spdx.json")
"""Outputs compared byte for byte (lock.json and build.json name the cache and time the steps)."""


# --- the table ---------------------------------------------------------------------------------------------


@dataclass
class Case:
    nodeid: str
    area: str = ""
    fault: str = ""
    expected: str = ""
    happened: str = ""
    outcome: str = ""
    compared: int = 0
    identical: int = 0

    def describe(self, area: str, fault: str, expected: str) -> None:
        self.area, self.fault, self.expected = area, fault, expected

    def saw(self, happened: str) -> None:
        self.happened = happened

    def same_bytes(self, out: Path, reference: Path) -> bool:
        """Compare the outputs with the reference build's (counted in the figures)."""
        self.compared += 1
        same = all((out / n).read_bytes() == (reference / n).read_bytes() for n in COMPARED)
        self.identical += same
        return same


CASES: dict[str, Case] = {}
CASE_PROPERTY = "fault_case"
"""Each case travels in its test report (`user_properties`): tests/conftest.py gathers the table from the reports,
where pytest prints (under pytest-xdist the cases run in the workers; the controller sees only the reports)."""


@pytest.fixture
def case(request: pytest.FixtureRequest) -> Case:
    c = CASES.setdefault(request.node.nodeid, Case(request.node.nodeid))
    return c


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    c = CASES.get(item.nodeid)
    if c is not None and (report.when == "call" or report.failed):
        if report.failed:
            c.outcome = "FAIL"
            text = call.excinfo.exconly() if call.excinfo else report.longreprtext
            c.happened = f"{report.when}: " + " ".join(text.split())[:160]
        elif report.skipped:
            c.outcome = "SKIP"
            c.happened = c.happened or " ".join(str(report.longrepr).split())[:160]
        elif not c.outcome:
            c.outcome = "ok"
        report.user_properties.append((CASE_PROPERTY, asdict(c)))
    return report


def _wrap(text: str, width: int) -> list[str]:
    words = [w[i : i + width] for w in text.split() for i in range(0, len(w), width)]
    lines, line = [], ""
    for w in words:
        if line and len(line) + 1 + len(w) > width:
            lines.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return [*lines, line] if line or not lines else lines


def table(cases: list[Case]) -> list[str]:
    widths = (3, 11, 34, 44, 52, 4)
    heads = ("#", "area", "fault", "expected", "happened", "")
    rule = "-+-".join("-" * w for w in widths)
    out = [" | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)), rule]
    for n, c in enumerate(cases, 1):
        cells = [[str(n)], [c.area], _wrap(c.fault, widths[2]), _wrap(c.expected, widths[3])]
        cells += [_wrap(c.happened, widths[4]), [c.outcome]]
        for i in range(max(map(len, cells))):
            row = ((col[i] if i < len(col) else "").ljust(w) for col, w in zip(cells, widths, strict=True))
            out.append(" | ".join(row))
        out.append(rule)
    passed = sum(c.outcome == "ok" for c in cases)
    failed = sum(c.outcome == "FAIL" for c in cases)
    skipped = len(cases) - passed - failed
    compared = sum(c.compared for c in cases)
    identical = sum(c.identical for c in cases)
    per_area = ", ".join(f"{a} {sum(c.area == a for c in cases)}" for a in sorted({c.area for c in cases}))
    out.append(
        f"figures: {len(cases)} fault cases tried ({per_area}); "
        f"{passed} survived as expected; {identical} of {compared} finished builds byte-identical to the undisturbed "
        "build they were compared with" + (f"; {skipped} skipped" if skipped else "")
    )
    out.append(f"{passed} passed, {failed} failed")
    return out


# --- running builds ----------------------------------------------------------------------------------------


@dataclass
class Run:
    """One CLI run and where it wrote."""

    proc: subprocess.CompletedProcess[str]
    out: Path

    @property
    def errors(self) -> list[str]:
        return [line for line in self.proc.stderr.splitlines() if line.startswith("error: ")]

    @property
    def digest(self) -> str:
        """The manifest digest the build printed."""
        return self.proc.stdout.split()[1] if self.proc.returncode == 0 and self.proc.stdout.split() else ""


def env_for(scratch: Path, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TMPDIR": str(scratch),
        "BOOTSTRAP_NET_TIMEOUT": NET_TIMEOUT,
        **extra,
    }


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bootstrap", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


MARKER = "packages-previous.txt"
"""A file of the previous build the new one does not write (a name of bootstrap's: a per-architecture file of an
architecture that is none), so that its presence tells the previous output from the new."""


@dataclass
class Site:
    """One case's directories: an output that already holds a previous build, a cache, a scratch TMPDIR."""

    root: Path
    mirrored: Mirrored
    mirror_url: str
    out: Path = field(init=False)
    cache: Path = field(init=False)
    scratch: Path = field(init=False)
    before: dict[str, str] = field(default_factory=dict)
    mounts: list[str] = field(default_factory=list)
    """Mounts the test made itself (small tmpfs for the resource faults)."""

    def __post_init__(self) -> None:
        self.out = self.root / "out"
        self.cache = self.root / "cache"
        self.scratch = self.root / "scratch"
        self.scratch.mkdir(parents=True, exist_ok=True)

    def previous(self, reference: Path) -> None:
        """Fill the output directory with a previous build (the reference, plus a marker of its own)."""
        shutil.copytree(reference, self.out)
        (self.out / MARKER).write_text("the previous build\n")
        self.before = checks.snapshot(self.out)

    def seed(self, cache: Path, areas: tuple[str, ...] = ("parsed", "expanded")) -> None:
        """Start from another cache's derived data (hard links: cache files are replaced, never changed in
        place): the build still downloads everything, but need not parse or decompress it again."""
        for area in areas:
            if (cache / area).is_dir():
                shutil.copytree(cache / area, self.cache / area, copy_function=os.link)

    def args(self, *extra: str) -> list[str]:
        return [
            "debian-slim",
            "-o",
            str(self.out),
            "-q",
            "--mirror",
            self.mirror_url,
            "--security-mirror",
            self.mirror_url,
            "--keyring",
            str(self.mirrored.repo.keyring),
            "--cache-dir",
            str(self.cache),
            *extra,
        ]

    def build(self, *extra: str, timeout: float = 300, **env: str) -> Run:
        return Run(cli(*self.args(*extra), env=env_for(self.scratch, **env), timeout=timeout), self.out)

    def bad_cache(self) -> list[str]:
        return checks.bad_cache_entries(self.cache, [self.mirrored.repo.keyring])

    def assert_clean_failure(self, run: Run, *words: str) -> str:
        """A failed build: one `error:` line (with each of `words`) and a hint, no traceback; the previous output
        intact; no staging directory, scratch directory, mount, process or unsound cache entry left. Returns the
        error line."""
        stderr = run.proc.stderr
        assert run.proc.returncode != 0, "the build succeeded"
        assert len(run.errors) == 1, stderr
        assert all(w in run.errors[0] for w in words), stderr
        assert any(line.startswith("hint: ") for line in stderr.splitlines()), stderr
        assert "Traceback" not in stderr, stderr
        self.assert_nothing_left()
        return run.errors[0].removeprefix("error: ")

    def assert_nothing_left(self) -> None:
        assert checks.snapshot(self.out) == self.before, "the previous output was changed"
        assert checks.staging_left(self.out) == [], "a staging directory was left"
        assert list(self.scratch.iterdir()) == [], "a scratch directory was left"
        assert [m for m in checks.mounts_under(self.root) if m not in self.mounts] == [], "a mount was left"
        assert checks.processes_mentioning(str(self.root)) == [], "a process was left"
        assert self.bad_cache() == [], "the cache holds entries that fail their verification"


@pytest.fixture(scope="session")
def mirror(mirrored: Mirrored) -> Iterator[FaultProxy]:
    """The fault proxy in front of the fixture archive, for the whole session (one URL for every build)."""
    proxy = FaultProxy(mirrored.url)
    yield proxy
    proxy.stop()


@pytest.fixture
def faulty(mirror: FaultProxy) -> Iterator[FaultProxy]:
    """The mirror proxy with no fault set and an empty record; cleared again after the test."""
    mirror.clear()
    yield mirror
    mirror.clear()


@dataclass(frozen=True)
class Reference:
    out: Path
    digest: str
    cache: Path


@pytest.fixture(scope="session")
def reference(mirror: FaultProxy, mirrored: Mirrored, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    """The undisturbed build every other is compared with: through the proxy, with no fault."""
    mirror.clear()
    site = Site(tmp_path_factory.mktemp("reference"), mirrored, mirror.url)
    run = site.build()
    assert run.proc.returncode == 0, run.proc.stderr
    return Reference(site.out, run.digest, site.cache)


@pytest.fixture
def site(tmp_path: Path, mirrored: Mirrored, mirror: FaultProxy) -> Site:
    return Site(tmp_path, mirrored, mirror.url)
