"""The three HTTP clients (mirror downloads, registry requests, webhooks) classify the same real failures the
same way: one table of what a local server does wrong, and for each client how many times it asked."""

from __future__ import annotations

import socket
import ssl
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bootstrap.errors import BootstrapError
from bootstrap.host import http, retry
from bootstrap.publish import webhook
from bootstrap.registry.options import Options
from bootstrap.registry.transport import Transport
from tests.fixtures.certs import ca_and_server
from tests.fixtures.server import in_thread

ATTEMPTS = 3
BODY = b"x" * 1000

# What the server does, and whether that is worth another try (asked ATTEMPTS times) or not (asked once).
TABLE: dict[str, bool] = {
    "ok": False,
    "reset": True,
    "stall": True,
    "short": True,
    "status-500": True,
    "status-503": True,
    "status-429": True,
    "status-404": False,
    "status-400": False,
    "status-403": False,
    "status-501": False,
    "untrusted": False,
}
BODY_UNREAD = {("webhook", "short")}
"""A webhook never reads the answer's body: a short one is a delivery (its status decides)."""
TIMEOUT = 0.3
"""The read timeout of every client (`$BOOTSTRAP_NET_TIMEOUT`, the registry's own option)."""
STALL_TIMEOUT = 0.1
"""The read timeout against the server that never answers: each client waits it out ATTEMPTS times (nothing
arrives there for a shorter timeout to cut early), so the row takes 3 x 3 of these, not of TIMEOUT."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    release: threading.Event

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def _any(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        kind = self.path.strip("/").split("/")[0]
        if kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True
            return
        if kind == "stall":
            self.release.wait(10)
            self.close_connection = True
            return
        status = int(kind.removeprefix("status-")) if kind.startswith("status-") else 200
        self.send_response(status)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(BODY[:10] if kind == "short" else BODY)
        self.close_connection = True

    do_GET = do_POST = do_HEAD = _any  # noqa: N815


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, context: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), type("H", (_Handler,), {"release": threading.Event()}))
        self.handler: type[_Handler] = self.RequestHandlerClass  # type: ignore[assignment]
        if context is not None:
            self.socket = context.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.connections = 0
        self.lock = threading.Lock()
        self._stop = in_thread(self)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self.lock:
            self.connections += 1
        return conn, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass

    def stop(self) -> None:
        self.handler.release.set()
        self._stop()


@pytest.fixture
def servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], _Server]]:
    monkeypatch.setenv(retry.TIMEOUT_ENV, str(TIMEOUT))
    monkeypatch.setattr(retry, "DEFAULT", retry.Policy(attempts=ATTEMPTS, backoff=0.01))
    monkeypatch.setattr(webhook, "POLICY", retry.Policy(attempts=ATTEMPTS, backoff=0.01))
    made: list[_Server] = []

    def make(tls: bool) -> _Server:
        context = None
        if tls:
            certs = ca_and_server(tmp_path / f"certs{len(made)}")
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certs.cert, certs.key)
        made.append(_Server(context))
        return made[-1]

    yield make
    for server in made:
        server.stop()


def _mirror(url: str) -> None:
    http.fetch_bytes(url)


def _registry(url: str) -> None:
    host = url.split("/")[2]
    timeout = retry.read_timeout()  # the registry client takes it as an option
    transport = Transport(host, Options(retries=ATTEMPTS - 1, backoff=0.01, timeout=timeout, certs_dir=Path("/none")))
    try:
        transport.send("GET", url)
    finally:
        transport.close()


def _webhook(url: str) -> None:
    webhook.send(url, {"event": "build"})


CLIENTS: dict[str, Callable[[str], None]] = {"mirror": _mirror, "registry": _registry, "webhook": _webhook}


@pytest.mark.parametrize("failure", list(TABLE))
def test_the_clients_agree(failure: str, servers: Callable[[bool], _Server], monkeypatch: pytest.MonkeyPatch) -> None:
    if failure == "stall":
        monkeypatch.setenv(retry.TIMEOUT_ENV, str(STALL_TIMEOUT))
    server = servers(failure == "untrusted")
    scheme = "https" if failure == "untrusted" else "http"
    asked: dict[str, int] = {}
    for name, client in CLIENTS.items():
        before = server.connections
        with suppress(BootstrapError):
            client(f"{scheme}://127.0.0.1:{server.server_address[1]}/{failure}/{name}")
        asked[name] = server.connections - before
    expected = {name: 1 if (name, failure) in BODY_UNREAD or not TABLE[failure] else ATTEMPTS for name in CLIENTS}
    assert asked == expected, f"{failure}: asked {asked}, expected {expected}"


@pytest.mark.parametrize("failure", list(TABLE))
def test_classify_says_the_same(failure: str, servers: Callable[[bool], _Server]) -> None:
    """`retry.classify` on what requests raises for each failure (an answer's status through `check_status`)."""
    import requests

    server = servers(failure == "untrusted")
    scheme = "https" if failure == "untrusted" else "http"
    url = f"{scheme}://127.0.0.1:{server.server_address[1]}/{failure}/raw"
    verdict: retry.Transient | None = None
    try:
        with requests.get(url, timeout=(1, TIMEOUT), stream=True) as resp:
            retry.check_status(resp)
            resp.raw.read(decode_content=False)
    except Exception as exc:  # noqa: BLE001 - the point is which exceptions classify calls transient
        verdict = retry.classify(exc)
    assert (verdict is not None) == TABLE[failure], (failure, verdict)
