"""Shared fixtures: a repository root on sys.path, local HTTP servers, throwaway signing keys, a cache."""

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bootstrap.cache import Cache  # noqa: E402
from tests.fixtures.gpg import GpgKey  # noqa: E402
from tests.fixtures.server import Server  # noqa: E402

Serve = Callable[[Path], str]


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


@pytest.fixture(scope="session")
def gpg_key() -> Iterator[GpgKey]:
    """The archive signing key of the fixture repositories."""
    with GpgKey.generate() as key:
        yield key


@pytest.fixture(scope="session")
def other_gpg_key() -> Iterator[GpgKey]:
    """A second key, absent from every fixture keyring."""
    with GpgKey.generate("Someone Else <other@example.invalid>") as key:
        yield key


@pytest.fixture
def cache(tmp_path: Path) -> Cache:
    """An empty content-addressed cache for one test."""
    return Cache(tmp_path / "cache").ensure()
