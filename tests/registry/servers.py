"""Real servers for the registry tests: docker-registry processes, a Bearer token server, a recording proxy.

Everything listens on 127.0.0.1 on a free port and is stopped by the fixture that started it.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import http.server
import json
import re
import socket
import ssl
import struct
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Quiet(http.server.ThreadingHTTPServer):
    """No traceback on stderr when a client (or the proxy itself, on purpose) drops a connection."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


Handler = http.server.BaseHTTPRequestHandler


def relay_handler(relay: Callable[[Handler], None]) -> type[Handler]:
    """A keep-alive (HTTP/1.1) handler that passes every request, whatever its method, to `relay`; a client that
    hangs up only ends its connection."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except OSError:
                self.close_connection = True

        def _any(self) -> None:
            relay(self)

        do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

    return Handler


def _serve(httpd: http.server.ThreadingHTTPServer, name: str) -> threading.Thread:
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=name, daemon=True)
    thread.start()
    return thread


# --- certificates ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CA:
    """A throwaway CA and a server certificate it signed for IP:127.0.0.1 (made with openssl)."""

    ca_cert: Path
    cert: Path
    key: Path


def make_ca(openssl: str, directory: Path) -> CA:
    directory.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=directory, check=True, capture_output=True)

    run(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bootstrap test CA",
        "-keyout", "ca.key", "-out", "ca.crt",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr")
    (directory / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    run(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", "server.ext", "-out", "server.crt",
    )  # fmt: skip
    return CA(directory / "ca.crt", directory / "server.crt", directory / "server.key")


# --- the registry ------------------------------------------------------------------------------------------


@dataclass
class TokenAuth:
    realm: str
    service: str
    issuer: str
    rootcertbundle: Path


class Registry:
    """`docker-registry serve` on 127.0.0.1: plain, with TLS, with htpasswd Basic auth, or with token auth."""

    def __init__(
        self,
        exe: str,
        workdir: Path,
        *,
        tls: CA | None = None,
        htpasswd: Path | None = None,
        token: TokenAuth | None = None,
    ) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        config: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "data")}, "delete": {"enabled": True}},
            "http": {"addr": self.host, "secret": uuid.uuid4().hex},
        }
        if tls is not None:
            config["http"]["tls"] = {"certificate": str(tls.cert), "key": str(tls.key)}
        if htpasswd is not None:
            config["auth"] = {"htpasswd": {"realm": "bootstrap-test", "path": str(htpasswd)}}
        if token is not None:
            config["auth"] = {"token": {k: str(v) for k, v in token.__dict__.items()}}
        (workdir / "config.yml").write_text(json.dumps(config))  # YAML is a superset of JSON
        self.log = workdir / "registry.log"
        self.scheme = "https" if tls else "http"
        self._verify: str | bool = str(tls.ca_cert) if tls else False
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([exe, "serve", str(workdir / "config.yml")], stdout=log, stderr=log)
        self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited {self.proc.returncode}:\n{self.log.read_text()}")
            try:
                requests.get(f"{self.scheme}://{self.host}/v2/", verify=self._verify, timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer on {self.host}:\n{self.log.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the Bearer token server -------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """A Docker token server (the distribution token spec): checks Basic credentials, signs RS256 JWTs.

    `users` maps user -> (password, actions granted at most); anonymous requests get no access. `field` is the
    JSON member the token comes in (`token` or `access_token`). `requests` records (account, scopes) asked.
    """

    service = "bootstrap-test-registry"
    issuer = "bootstrap-test-issuer"

    def __init__(
        self, openssl: str, directory: Path, users: dict[str, tuple[str, set[str]]], host: str = "127.0.0.1"
    ) -> None:
        from cryptography.hazmat.primitives import serialization

        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=token signer",
             "-keyout", "token.key", "-out", "token.crt"],
            cwd=directory, check=True, capture_output=True,
        )  # fmt: skip
        from cryptography import x509

        self.cert_path = directory / "token.crt"
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        from cryptography.hazmat.primitives.asymmetric import rsa

        key = serialization.load_pem_private_key((directory / "token.key").read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        self._key = key
        self.users = users
        self.field = "token"
        self.requests: list[tuple[str | None, list[str]]] = []
        self.authorizations: list[str | None] = []
        """The Authorization header of every request, as received."""
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:
                outer.authorizations.append(self.headers.get("Authorization"))
                status, body = outer.answer(self.path, self.headers.get("Authorization"))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = Quiet((host, 0), Handler)
        self.realm = f"http://{host}:{self._httpd.server_address[1]}/token"
        self._thread = _serve(self._httpd, "token-server")

    def auth(self) -> TokenAuth:
        return TokenAuth(self.realm, self.service, self.issuer, self.cert_path)

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        scopes = [s for value in query.get("scope", []) for s in value.split()]
        user = None
        if authorization:
            name, _, password = base64.b64decode(authorization.split()[-1]).decode().partition(":")
            if self.users.get(name, ("", set()))[0] != password or name not in self.users:
                self.requests.append((name, scopes))
                return 401, {"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}
            user = name
        self.requests.append((user, scopes))
        access = []
        for scope in scopes:
            kind, name, actions = scope.split(":")
            granted = self.users[user][1] if user else set()
            access.append({"type": kind, "name": name, "actions": sorted(set(actions.split(",")) & granted)})
        return 200, {self.field: self._jwt(user or "", access), "expires_in": 300}

    def _jwt(self, subject: str, access: list[dict[str, Any]]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 300, "nbf": now - 10,
            "iat": now, "jti": uuid.uuid4().hex, "access": access,
        }  # fmt: skip
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


# --- the recording, failure-injecting reverse proxy --------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    tls: bool = False
    """The request came over TLS (a Proxy started with a CA speaks TLS and plain HTTP on one port)."""

    @property
    def authorization(self) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == "authorization"), None)

    @property
    def upload(self) -> bool:
        """A request that carries blob data or starts an upload (mount POSTs excluded)."""
        return "/blobs/uploads/" in self.path and self.method in ("POST", "PUT", "PATCH") and "mount" not in self.query


_REFERRERS = re.compile(r"^/v2/(.+)/referrers/(sha256:[0-9a-f]{64})$")
_MANIFEST = re.compile(r"^/v2/(.+)/manifests/([^/]+)$")
_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade"}


@dataclass
class Gate:
    """Authentication a Proxy asks for itself, in front of an anonymous registry: Basic, or Bearer tokens
    that its own `/token` endpoint gives for the Basic credentials."""

    scheme: str
    """`basic` or `bearer`."""
    user: str
    password: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.user}:{self.password}".encode()).decode()

    def answer(self, path: str, authorization: str | None, base: str) -> tuple[int, dict[str, str], bytes] | None:
        """None lets the request through; else the answer to give instead."""
        if path.startswith("/token"):
            if authorization != self.basic():
                return 401, {}, b"{}"
            return 200, {"Content-Type": "application/json"}, json.dumps({"token": self.token}).encode()
        if authorization == (self.basic() if self.scheme == "basic" else f"Bearer {self.token}"):
            return None
        challenge = f'Bearer realm="{base}/token",service="fixture"' if self.scheme == "bearer" else "Basic realm=x"
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        return 401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"}, body


class _DualServer(Quiet):
    """Speaks TLS to clients that start a handshake and plain HTTP to the others, on the same port."""

    context: ssl.SSLContext | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.context is not None:
            try:
                if request.recv(1, socket.MSG_PEEK) == b"\x16":
                    request = self.context.wrap_socket(request, server_side=True)
            except OSError:
                return
        try:
            super().finish_request(request, client_address)
        finally:
            request.close()


def _answer(h: http.server.BaseHTTPRequestHandler, status: int, headers: dict[str, str], body: bytes) -> None:
    h.send_response(status)
    for k, v in headers.items():
        h.send_header(k, v)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(body)


class Proxy:
    """An HTTP reverse proxy to a plain registry that records every request and can misbehave on demand.

    `cut_after = N`: every PUT or PATCH whose body is longer than N bytes has its connection reset after N bytes.
    `fail_next = K`: the next K requests are answered 503.
    `gate`: ask for credentials itself (the registry behind it is anonymous).
    `redirect_blobs = BASE`: answer GET and HEAD of a blob with 307 to BASE + the same path (blob storage).
    `upload_location = BASE`: rewrite the scheme and host of upload Locations to BASE's.
    `referrers_api = True`: be a registry with the OCI 1.1 referrers API in front of one without it: manifests
    pushed with a `subject` are answered with `OCI-Subject` and listed by `GET /v2/<name>/referrers/<digest>`
    (with the `artifactType` filter), as the distribution spec says.
    With `tls`, it speaks TLS (a certificate of that CA) and plain HTTP on the same port.
    """

    def __init__(self, upstream: str, tls: CA | None = None) -> None:
        self.upstream = upstream
        self.seen: list[Seen] = []
        self.cut_after: int | None = None
        self.fail_next = 0
        self.cuts = 0
        self.gate: Gate | None = None
        self.redirect_blobs: str | None = None
        self.upload_location: str | None = None
        self.referrers_api = False
        self.referrers: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._httpd = _DualServer(("127.0.0.1", 0), relay_handler(self.relay))
        if tls is not None:
            self._httpd.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._httpd.context.load_cert_chain(tls.cert, tls.key)
        self.host = f"127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = _serve(self._httpd, "registry-proxy")

    def relay(self, h: http.server.BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(h.path)
        tls = isinstance(h.connection, ssl.SSLSocket)
        record = Seen(h.command, parts.path, urllib.parse.parse_qs(parts.query), None, dict(h.headers), tls)
        with self._lock:
            self.seen.append(record)
            fail = self.fail_next > 0
            self.fail_next -= 1 if fail else 0
        length = int(h.headers.get("Content-Length") or 0)
        if self.cut_after is not None and h.command in ("PUT", "PATCH") and length > self.cut_after:
            h.rfile.read(self.cut_after)
            self.cuts += 1
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.close_connection = True
            h.connection.close()
            return
        body = h.rfile.read(length) if length else None
        scheme = "https" if tls else "http"
        refusal = self.gate.answer(h.path, record.authorization, f"{scheme}://{self.host}") if self.gate else None
        if fail or refusal:
            record.status, headers, data = refusal or (503, {}, b"")
            _answer(h, record.status, headers, data)
            return
        listed = _REFERRERS.match(parts.path) if self.referrers_api and h.command == "GET" else None
        if listed:
            self._answer_referrers(h, record, listed.group(1), listed.group(2), record.query)
            return
        if self.redirect_blobs and h.command in ("GET", "HEAD") and "/blobs/sha256:" in parts.path:
            record.status = 307
            _answer(h, 307, {"Location": self.redirect_blobs + h.path}, b"")
            return
        conn = http.client.HTTPConnection(self.upstream, timeout=60)
        try:
            dropped = _HOP | ({"authorization"} if self.gate else set())
            headers = {k: v for k, v in h.headers.items() if k.lower() not in dropped}
            headers["X-Forwarded-Proto"] = scheme
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        record.status = resp.status
        subject = self._subject(h.command, parts.path, body) if resp.status == 201 else None
        h.send_response(resp.status, resp.reason)
        if subject:
            h.send_header("OCI-Subject", subject)
        for k, v in resp.getheaders():
            if k.lower() == "location" and self.upload_location and "/blobs/uploads/" in v:
                moved = urllib.parse.urlsplit(self.upload_location)
                v = urllib.parse.urlunsplit(urllib.parse.urlsplit(v)._replace(scheme=moved.scheme, netloc=moved.netloc))
            if k.lower() not in _HOP and k.lower() != "content-length":
                h.send_header(k, v)
        length_out = resp.getheader("Content-Length") if h.command == "HEAD" else str(len(data))
        h.send_header("Content-Length", length_out or "0")
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(data)

    def _subject(self, method: str, path: str, body: bytes | None) -> str | None:
        """Remember a pushed manifest that has a subject (referrers API mode); its subject digest."""
        m = _MANIFEST.match(path)
        if not (self.referrers_api and method == "PUT" and m and body):
            return None
        doc = json.loads(body)
        subject = (doc.get("subject") or {}).get("digest")
        if not subject:
            return None
        descriptor: dict[str, Any] = {
            "mediaType": doc.get("mediaType"),
            "digest": "sha256:" + hashlib.sha256(body).hexdigest(),
            "size": len(body),
        }
        artifact_type = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
        if artifact_type:
            descriptor["artifactType"] = artifact_type
        if doc.get("annotations"):
            descriptor["annotations"] = doc["annotations"]
        with self._lock:
            listed = self.referrers.setdefault((m.group(1), subject), [])
            if descriptor not in listed:
                listed.append(descriptor)
        return str(subject)

    def _answer_referrers(
        self, h: http.server.BaseHTTPRequestHandler, record: Seen, name: str, digest: str, query: dict[str, list[str]]
    ) -> None:
        found = list(self.referrers.get((name, digest), []))
        headers = {"Content-Type": "application/vnd.oci.image.index.v1+json"}
        wanted = query.get("artifactType")
        if wanted:
            found = [d for d in found if d.get("artifactType") in wanted]
            headers["OCI-Filters-Applied"] = "artifactType"
        body = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": found}
        record.status = 200
        _answer(h, 200, headers, json.dumps(body).encode())

    def since(self, mark: int) -> list[Seen]:
        return self.seen[mark:]

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
