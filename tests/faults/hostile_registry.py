"""A hostile registry on a loopback address: fixed answers for most paths, and for one path an answer without
end (an endless or multi-GB body, endless headers), generated lazily and given up when the client hangs up."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

from tests.registry.servers import Handler, Quiet, _answer, _serve

CHUNK = 64 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Flood:
    """How a path is answered without end."""

    kind: str
    """`body` (no length, until the client hangs up), `declared` (Content-Length: `size`, sent lazily),
    `header-line` (one header line without end), `headers` (header lines without end)."""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    size: int = 3 << 30


class HostileRegistry:
    """`routes` maps a path (a regex, matched whole, query excluded) to (status, headers, body); `flood` maps a
    path regex to a Flood. `seen` records (method, path, Authorization) of every request; `sent` the bytes
    each flood sent before the client hung up."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {"/v2/": (200, {}, b"{}")}
        self.floods: dict[str, Flood] = {}
        self.seen: list[tuple[str, str, str | None]] = []
        self.sent: list[int] = []
        self._lock = threading.Lock()
        outer = self

        class Hostile(Handler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def _any(self) -> None:
                outer.handle(self)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self._httpd = Quiet((host, 0), Hostile)
        self.host = f"{host}:{self._httpd.server_address[1]}"
        self._thread = _serve(self._httpd, "hostile-registry")

    def handle(self, h: Handler) -> None:
        path = h.path.split("?", 1)[0]
        with self._lock:
            self.seen.append((h.command, path, h.headers.get("Authorization")))
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        flood = next((f for p, f in self.floods.items() if re.fullmatch(p, path)), None)
        if flood is not None:
            self._flood(h, flood)
            return
        status, headers, body = next(
            (r for p, r in self.routes.items() if re.fullmatch(p, path)),
            (404, {"Content-Type": "application/json"}, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no"}]}'),
        )
        _answer(h, status, headers, body)

    def _flood(self, h: Handler, flood: Flood) -> None:
        h.close_connection = True
        sent = 0
        try:
            h.wfile.write(f"HTTP/1.1 {flood.status} Flood\r\n".encode())
            for k, v in flood.headers.items():
                h.wfile.write(f"{k}: {v}\r\n".encode())
            if flood.kind == "header-line":
                h.wfile.write(b"X-Flood: ")
                while sent < flood.size:
                    h.wfile.write(b"a" * CHUNK)
                    sent += CHUNK
            elif flood.kind == "headers":
                line = b"X-Flood-%d: " + b"a" * 200 + b"\r\n"
                n = 0
                while sent < flood.size:
                    block = b"".join(line % (n + i) for i in range(256))
                    h.wfile.write(block)
                    sent, n = sent + len(block), n + 256
            else:
                if flood.kind == "declared":
                    h.wfile.write(f"Content-Length: {flood.size}\r\n".encode())
                h.wfile.write(b"Connection: close\r\n\r\n")
                block = b" " * CHUNK
                while sent < flood.size:
                    h.wfile.write(block)
                    sent += CHUNK
        except OSError:
            pass
        finally:
            with self._lock:
                self.sent.append(sent)
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)

    # --- contents ---------------------------------------------------------------------------------------------

    def blob(self, repository: str, data: bytes) -> dict[str, Any]:
        """Serve a blob; its descriptor."""
        digest = digest_of(data)
        self.routes[f"/v2/{repository}/blobs/{digest}"] = (200, {"Content-Type": "application/octet-stream"}, data)
        return {"digest": digest, "size": len(data)}

    def manifest(self, repository: str, doc: dict[str, Any], *tags: str) -> dict[str, Any]:
        """Serve a manifest (or index) under its digest and `tags`; its descriptor."""
        data = json.dumps(doc).encode()
        media_type = doc["mediaType"]
        digest = digest_of(data)
        headers = {"Content-Type": media_type, "Docker-Content-Digest": digest}
        for ref in (digest, *tags):
            self.routes[f"/v2/{repository}/manifests/{re.escape(ref)}"] = (200, headers, data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}

    def image(self, repository: str, tag: str, arch: str = "amd64") -> dict[str, Any]:
        """A small image (its config and one layer) under `tag`; its manifest's descriptor."""
        config = self.blob(repository, json.dumps({"architecture": arch, "os": "linux", "config": {}}).encode())
        layer = self.blob(repository, b"not really a layer")
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
        }
        return self.manifest(repository, doc, tag)

    def referrers(self, repository: str, subject: str, descriptors: list[dict[str, Any]]) -> None:
        """Answer the referrers API for `subject` with these descriptors."""
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}).encode()
        self.routes[f"/v2/{repository}/referrers/{subject}"] = (200, {"Content-Type": OCI_INDEX}, body)

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
