"""Shared fixtures: a repository root on sys.path, local HTTP servers, throwaway signing keys, a cache."""

import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bootstrap.host.cache import Cache  # noqa: E402
from tests.e2e.conftest import Mirrored, need  # noqa: E402
from tests.fixtures.gpg import GpgKey  # noqa: E402
from tests.fixtures.server import Server  # noqa: E402
from tests.fixtures.shared import made_once  # noqa: E402

Serve = Callable[[Path], str]


def _weight(item: pytest.Item) -> int:
    """Longest first (so that no long test starts last on one pytest-xdist worker while the others idle): the
    end-to-end and fault-injection modules, then the lint tests (mypy takes 20 s without its cache), then the rest."""
    if item.get_closest_marker("e2e") is not None:
        return 0
    return 1 if item.path.name == "test_lint.py" else 2


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the tests longest first, and keep each end-to-end module on one pytest-xdist worker: with
    `--dist loadgroup` its module- and session-scoped builds are then made once, not once per worker; unit tests
    are spread one by one."""
    items.sort(key=_weight)
    for item in items:
        if item.get_closest_marker("e2e") is not None and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


@pytest.fixture(scope="session", autouse=True)
def _no_proxy_for_localhost() -> Iterator[None]:
    """Fixture servers listen on 127.0.0.1: never send those requests through a proxy from the environment."""
    with pytest.MonkeyPatch.context() as mp:
        for var in ("no_proxy", "NO_PROXY"):
            current = os.environ.get(var, "")
            mp.setenv(var, ",".join(x for x in (current, "127.0.0.1", "localhost") if x))
        yield


def _serving() -> Iterator[Serve]:
    servers: list[Server] = []

    def serve(directory: Path) -> str:
        server = Server(directory)
        servers.append(server)
        return server.url

    try:
        yield serve
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def serve() -> Iterator[Serve]:
    """`serve(directory) -> base URL`: serve a directory on 127.0.0.1 until the test ends."""
    yield from _serving()


@pytest.fixture(scope="session")
def serve_session() -> Iterator[Serve]:
    """`serve(directory) -> base URL`, for session-scoped fixtures: the server lives until the session ends."""
    yield from _serving()


@pytest.fixture(autouse=True)
def _fast_retries(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In-process tests wait 10 ms, not 0.5 s and more, between the mirror's retries (the same count of
    attempts, so what is retried is still tested); tests/host/test_retry.py tests the real policy's waits."""
    from bootstrap.host import retry

    if request.node.path.name != "test_retry.py":
        monkeypatch.setattr(retry, "DEFAULT", retry.Policy(backoff=0.01, max_wait=0.05))


@pytest.fixture(scope="session")
def gpg_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GpgKey]:
    """The archive signing key of the fixture repositories: one key for the whole run, each pytest-xdist worker
    holding a copy in a home of its own, so that what one worker built and signed serves every worker
    (tests/fixtures/shared.py)."""
    with GpgKey.load(made_once(tmp_path_factory, "archive-key", _save_new_key)) as key:
        yield key


def _save_new_key(dest: Path) -> None:
    with GpgKey.generate() as key:
        key.save(dest)


@pytest.fixture(scope="session")
def other_gpg_key() -> Iterator[GpgKey]:
    """A second key, absent from every fixture keyring."""
    with GpgKey.generate("Someone Else <other@example.invalid>") as key:
        yield key


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    """An empty content-addressed cache for one test."""
    return Cache(tmp_path / "cache").ensure()


# --- shared by the end-to-end and the fault-injection tests (one instance per session) ------------------------


@pytest.fixture(scope="session")
def as_root() -> None:
    need(os.geteuid() == 0, "end-to-end builds need root")


@pytest.fixture(scope="session")
def mirrored(
    tmp_path_factory: pytest.TempPathFactory, as_root: None, gpg_key: GpgKey, serve_session: Serve
) -> Mirrored:
    """Real packages (fetched once from the host's mirror) re-published in a fixture archive we control."""
    from bootstrap.build import download, recipe
    from bootstrap.build.pipeline import resolve_plan
    from bootstrap.build.plan import Options, make_plan
    from tests.fixtures.repo import Repo

    cache = tmp_path_factory.mktemp("mirrored-cache")
    plan = make_plan(recipe.load("debian-slim"), Options(suite="trixie", cache_dir=cache))
    _, selection = resolve_plan(plan)
    debs = download.fetch_all(selection.packages, plan.cache)
    repo = Repo(tmp_path_factory.mktemp("mirrored") / "repo", gpg_key)
    repo.debian_dists("fixture", "stable")
    for pkg in selection.packages:
        named = repo.root / ".incoming" / pkg.filename.rsplit("/", 1)[-1]
        named.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(debs[pkg.name], named)
        repo.add_deb("fixture", named)
    shutil.rmtree(repo.root / ".incoming")
    repo.publish()
    return Mirrored(repo, serve_session(repo.root), tmp_path_factory.mktemp("fixture-cache"))


# --- the fault-injection table (tests/faults/conftest.py), printed where pytest prints ---------------------------

_FAULT_CASES: dict[str, object] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Gather the fault cases from the reports: in this process, or from the pytest-xdist workers."""
    from tests.faults.conftest import CASE_PROPERTY, Case

    for key, value in report.user_properties:
        if key == CASE_PROPERTY and isinstance(value, dict):
            _FAULT_CASES[report.nodeid] = Case(**value)


def pytest_unconfigure(config: pytest.Config) -> None:
    """After pytest's own summary, so that the fault table's `N passed, N failed` is the last line of the run."""
    from tests.faults.conftest import Case, table

    cases = [c for c in _FAULT_CASES.values() if isinstance(c, Case) and c.outcome]
    if not cases or hasattr(config, "workerinput"):
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    lines = ["", "fault injection: every case, what was expected, what happened", *table(cases)]
    if reporter is not None:
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines))
