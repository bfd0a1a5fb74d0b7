"""A fault-injecting reverse proxy on 127.0.0.1, in front of a fixture archive or a real docker-registry.

Every request is forwarded to the upstream (any method, body included) unless a `Fault` whose pattern matches
its method and path has a turn left; then the fault decides the answer:

| kind       | what the client gets                                                                       |
|------------|--------------------------------------------------------------------------------------------|
| `status`   | `status` (500, 503, ...) with an empty body                                                 |
| `reset`    | the headers and `at` of the body, then a TCP reset (RST)                                   |
| `truncate` | the headers (the full Content-Length) and `at` of the body, then the connection closed     |
| `short`    | a body cut at `at`, announced with that shorter Content-Length (nothing to tell it by)     |
| `stall`    | the headers and `at` of the body, then nothing for `hold` seconds                         |
| `drip`     | the headers, then one byte every `interval` seconds for as long as the client listens      |
| `wrong`    | the body with bytes flipped in the middle (same length)                                    |
| `replace`  | `body` instead of the upstream's                                                           |
| `redirect` | 302 to the same URL, again and again                                                        |
| `lie`      | `status` with `headers`, without asking the upstream (a HEAD that says a blob is there)    |
| `cut`      | for a request with a body: reads `at` of it (bytes), then a TCP reset                      |
| `expire`   | with a `gate`: every token given so far stops working (then the gate answers 401)          |
| `random`   | with probability `rate`, one of 500, 503, reset, truncate; never more than `max_run`      |
|            | times in a row for one path (so transient: retries get through). The draw is a hash of   |
|            | the seed, the path and how often it was asked for: the same whatever the request order   |

`times` is how many requests a fault takes (None: all); `per_path` faults only the first requests of each path.
Answers carry an ETag and honour `Range` with `If-Range`, as a mirror's web server does, so a client can resume
a cut download. `seen` records every request: method, path, status, the fault applied, the Range asked for.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import re
import socket
import struct
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field

from tests.registry.servers import Gate, Quiet, relay_handler

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "te", "upgrade", "content-length"}


@dataclass
class Fault:
    kind: str
    pattern: str = ".*"
    """A regular expression searched in the request path."""
    methods: tuple[str, ...] = ("GET",)
    times: int | None = 1
    status: int = 503
    at: float = 0.5
    """Where the body is cut: a fraction of it (below 1), or a byte count (for `cut`)."""
    hold: float = 60.0
    interval: float = 0.2
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    per_path: int | None = None
    """Fault only the first `per_path` requests of each path (then it is healthy)."""
    after: int = 0
    """Let this many matching requests through before the first fault."""
    rate: float = 0.3
    max_run: int = 2
    seed: int = 20240101
    fired: int = 0
    hit: threading.Event = field(default_factory=threading.Event)
    """Set once the fault has done its work on a request (for a stall: once the partial body is out)."""
    _runs: dict[str, int] = field(default_factory=dict, repr=False)
    _asked: dict[str, int] = field(default_factory=dict, repr=False)

    def matches(self, method: str, path: str) -> bool:
        return method in self.methods and re.search(self.pattern, path) is not None and self.times != 0

    def take(self, path: str) -> str | None:
        """The kind of fault to apply to this request (None: let it through); counts a turn."""
        if self.after > 0:
            self.after -= 1
            return None
        if self.per_path is not None:
            seen = self._runs[path] = self._runs.get(path, 0) + 1
            if seen > self.per_path:
                return None
        if self.times is not None:
            self.times -= 1
        if self.kind != "random":
            self.fired += 1
            return self.kind
        asked = self._asked[path] = self._asked.get(path, 0) + 1
        draw = int.from_bytes(hashlib.sha256(f"{self.seed}:{path}:{asked}".encode()).digest()[:8], "big") / 2**64
        run = self._runs.get(path, 0)
        if run >= self.max_run or draw >= self.rate:
            self._runs[path] = 0
            return None
        self._runs[path] = run + 1
        self.fired += 1
        return ("500", "503", "reset", "truncate")[int(draw / self.rate * 4)]


@dataclass
class Seen:
    method: str
    path: str
    status: int | None = None
    fault: str | None = None
    range: str | None = None


def _cut(length: int, at: float) -> int:
    return int(at) if at >= 1 else max(1, int(length * at))


class FaultProxy:
    """Forwards to `upstream` (`http://127.0.0.1:PORT`); `faults` is consulted in order for each request."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urllib.parse.urlsplit(upstream).netloc
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.gate: Gate | None = None
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd = Quiet(("127.0.0.1", 0), relay_handler(self.handle))
        self.host = f"127.0.0.1:{self._httpd.server_address[1]}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def add(self, fault: Fault) -> Fault:
        self.faults.append(fault)
        return fault

    def clear(self) -> None:
        self.faults.clear()
        self.seen.clear()

    # --- figures -------------------------------------------------------------------------------------------

    def count(self, fault: str | None = None) -> int:
        """Requests answered with that fault (with any fault when None)."""
        return sum(1 for s in self.seen if (s.fault is not None if fault is None else s.fault == fault))

    # --- one request ---------------------------------------------------------------------------------------

    def _choose(self, method: str, path: str) -> tuple[Fault | None, str | None]:
        with self._lock:
            for fault in self.faults:
                if fault.matches(method, path):
                    kind = fault.take(path)
                    return (fault, kind) if kind is not None else (None, None)
        return None, None

    def handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        record = Seen(h.command, h.path, range=h.headers.get("Range"))
        with self._lock:
            self.seen.append(record)
        fault, kind = self._choose(h.command, urllib.parse.urlsplit(h.path).path)
        record.fault = kind
        length = int(h.headers.get("Content-Length") or 0)
        if kind == "cut" and fault is not None:
            h.rfile.read(min(length, _cut(length, fault.at)))
            fault.hit.set()
            self._reset(h)
            return
        body = h.rfile.read(length) if length else None
        if kind == "expire" and fault is not None and self.gate is not None:
            self.gate.token = uuid.uuid4().hex  # every token given so far is refused from now on
            fault.hit.set()
        if self.gate is not None:
            refusal = self.gate.answer(h.path, h.headers.get("Authorization"), self.url)
            if refusal is not None:
                record.status = refusal[0]
                self._send(h, *refusal)
                return
        if fault is not None and kind in ("500", "503", "status", "lie", "redirect"):
            status = {"500": 500, "503": 503}.get(kind or "", fault.status)
            headers = dict(fault.headers)
            if kind == "redirect":
                status, headers = 302, {"Location": h.path}
            record.status = status
            self._send(h, status, headers, b"", keep_length=kind == "lie")
            fault.hit.set()
            return
        status, reason, headers, data = self._forward(h, body)
        if fault is not None and kind == "replace":
            data = fault.body
        status, headers, data = self._ranged(h, status, headers, data)
        record.status = status
        self._deliver(h, status, reason, headers, data, fault, kind)

    def _forward(
        self, h: http.server.BaseHTTPRequestHandler, body: bytes | None
    ) -> tuple[int, str, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.upstream, timeout=60)
        try:
            dropped = _HOP | ({"authorization"} if self.gate else set())
            headers = {k: v for k, v in h.headers.items() if k.lower() not in dropped | {"range", "if-range"}}
            conn.request(h.command, h.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            kept = {k: v for k, v in resp.getheaders() if k.lower() not in _HOP}
            if h.command == "HEAD":
                kept["Content-Length"] = resp.getheader("Content-Length") or "0"
            return resp.status, resp.reason, kept, data
        finally:
            conn.close()

    @staticmethod
    def _ranged(
        h: http.server.BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """An ETag on every 200 GET; a 206 part when the client asks for `bytes=N-` of the same version."""
        if h.command != "GET" or status != 200:
            return status, headers, data
        etag = '"' + hashlib.sha256(data).hexdigest()[:24] + '"'
        headers = {**headers, "ETag": etag, "Accept-Ranges": "bytes"}
        asked = re.fullmatch(r"bytes=(\d+)-", h.headers.get("Range", ""))
        if asked is None or h.headers.get("If-Range", etag) != etag or int(asked.group(1)) >= len(data):
            return status, headers, data
        start = int(asked.group(1))
        headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        return 206, headers, data[start:]

    def _deliver(
        self,
        h: http.server.BaseHTTPRequestHandler,
        status: int,
        reason: str,
        headers: dict[str, str],
        data: bytes,
        fault: Fault | None,
        kind: str | None,
    ) -> None:
        announced = len(data)
        if fault is not None and kind == "wrong" and data:
            middle = len(data) // 2
            data = data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 16]) + data[middle + 16 :]
        if fault is not None and kind in ("reset", "truncate", "short", "stall"):
            data = data[: _cut(len(data), fault.at)]
            if kind == "short":
                announced = len(data)
        h.send_response(status, reason)
        for k, v in headers.items():
            if k.lower() != "content-length":
                h.send_header(k, v)
        h.send_header("Content-Length", headers.get("Content-Length", "0") if h.command == "HEAD" else str(announced))
        if kind in ("truncate", "drip"):
            h.send_header("Connection", "close")
        h.end_headers()
        if h.command == "HEAD":
            return
        if kind == "drip" and fault is not None:
            self._drip(h, data, fault)
            return
        h.wfile.write(data)
        h.wfile.flush()
        if fault is None:
            return
        if kind == "stall":
            fault.hit.set()
            self._hold(fault.hold)
            h.close_connection = True
        elif kind == "reset":
            self._reset(h)
        elif kind == "truncate":
            h.close_connection = True
        fault.hit.set()

    def _drip(self, h: http.server.BaseHTTPRequestHandler, data: bytes, fault: Fault) -> None:
        fault.hit.set()
        h.close_connection = True
        for i in range(len(data)):
            if self.stopping.is_set():
                return
            h.wfile.write(data[i : i + 1])
            h.wfile.flush()
            time.sleep(fault.interval)

    def _hold(self, seconds: float) -> None:
        self.stopping.wait(seconds)

    @staticmethod
    def _reset(h: http.server.BaseHTTPRequestHandler) -> None:
        h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        h.close_connection = True
        h.connection.close()

    @staticmethod
    def _send(
        h: http.server.BaseHTTPRequestHandler,
        status: int,
        headers: dict[str, str],
        body: bytes,
        keep_length: bool = False,
    ) -> None:
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        if not (keep_length and "Content-Length" in headers):
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def stop(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
