"""A small blob read back from a registry is fetched again when its bytes do not match its digest (a
content-addressed fetch: the same rule as a mirror's), and refused when they never do."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from bootstrap.registry.client import Client
from bootstrap.registry.errors import RegistryError
from bootstrap.registry.manifests import blob
from bootstrap.registry.options import Options
from tests.fixtures.server import in_thread

DATA = b'{"record": "lock"}'
DIGEST = "sha256:" + hashlib.sha256(DATA).hexdigest()


class _Registry(BaseHTTPRequestHandler):
    """GET /v2/ answers 200; a blob answers `wrong` times with other bytes of the same length, then right."""

    wrong = 0
    reads = 0

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = b"{}"
        if self.path.startswith("/v2/r/blobs/"):
            cls = type(self)
            cls.reads += 1
            body = DATA.replace(b"lock", b"LOCK") if cls.reads <= cls.wrong else DATA
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def registry() -> Iterator[tuple[str, type[_Registry]]]:
    handler = type("R", (_Registry,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    stop = in_thread(server)
    yield f"127.0.0.1:{server.server_address[1]}", handler
    stop()


@pytest.mark.parametrize(("wrong", "reads"), [(0, 1), (2, 3)])
def test_a_mismatching_blob_is_fetched_again(registry: tuple[str, type[_Registry]], wrong: int, reads: int) -> None:
    host, handler = registry
    handler.wrong = wrong
    with Client(host, Options(backoff=0.01)) as client:
        assert blob(client, "r", {"digest": DIGEST, "size": len(DATA), "mediaType": "application/json"}) == DATA
    assert handler.reads == reads


def test_a_blob_that_never_matches_is_refused(registry: tuple[str, type[_Registry]]) -> None:
    host, handler = registry
    handler.wrong = 100
    with Client(host, Options(retries=2, backoff=0.01)) as client, pytest.raises(RegistryError) as raised:
        blob(client, "r", {"digest": DIGEST, "size": len(DATA), "mediaType": "application/json"})
    assert "does not match its digest (3 attempts)" in raised.value.message
    assert handler.reads == 3
