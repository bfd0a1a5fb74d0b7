"""A frozen pull-through mirror on 127.0.0.1, so every timed run reads the same archive state from local disk.

`http://127.0.0.1:PORT/<prefix>/<path>` maps to `<upstreams[prefix]>/<path>`. The first request for a path fetches
it once and stores it under the cache directory; every later request is served from disk and never refetched,
`InRelease` included. "Not found" answers are kept too. An index file that a stored `InRelease` lists is
fetched by its hash and checked, so it matches the frozen `InRelease` even when the archive has moved on since.
HEAD, single byte ranges (with If-Range), If-None-Match and If-Modified-Since are answered as a mirror would.
"""

import contextlib
import dataclasses
import email.utils
import hashlib
import http.server
import os
import re
import shutil
import threading
import time
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

DEFAULT_DIR = Path("/var/cache/bootstrap-bench/mirror")
TIMEOUT = (10, 120)
CHUNK = 1 << 20
ATTEMPTS = 3
_RELEASE_FILES = frozenset({"InRelease", "Release", "Release.gpg"})


class UpstreamError(Exception):
    """The upstream answered with neither the file nor 404/410, or with the wrong bytes."""


@dataclasses.dataclass
class Counters:
    served: int = 0
    fetched: int = 0
    fetched_bytes: int = 0
    missing: int = 0
    served_bytes: int = 0
    errors: int = 0


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive span a single-range `Range` header asks for, or None to send the whole file.

    Raises ValueError when the range cannot be satisfied (answer 416)."""
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if m is None or not (m.group(1) or m.group(2)):
        return None  # several ranges or another unit: a server may send the whole file instead
    first, last = m.groups()
    if not first:
        if int(last) == 0 or size == 0:
            raise ValueError(f"unsatisfiable range {header!r}")
        return max(0, size - int(last)), size - 1
    start = int(first)
    if last and int(last) < start:
        return None
    if start >= size:
        raise ValueError(f"unsatisfiable range {header!r}")
    return start, min(int(last), size - 1) if last else size - 1


def release_checksums(text: str) -> tuple[dict[str, str], bool]:
    """SHA256 of every file a Release lists (unverified: the tools check signatures), and Acquire-By-Hash."""
    sums: dict[str, str] = {}
    by_hash = in_sha = False
    for line in text.splitlines():
        if line.startswith(" "):
            fields = line.split()
            if in_sha and len(fields) == 3:
                sums[fields[2]] = fields[0]
            continue
        if line.startswith("-----BEGIN PGP SIGNATURE"):
            break
        in_sha = line.startswith("SHA256:")
        if line.startswith("Acquire-By-Hash:"):
            by_hash = line.partition(":")[2].strip().lower() == "yes"
    return sums, by_hash


class Store:
    """The files on disk, fetched from the upstreams on first use."""

    def __init__(self, root: Path, upstreams: Mapping[str, str]) -> None:
        self.root = root
        self.upstreams = {k.strip("/"): v.rstrip("/") for k, v in upstreams.items()}
        self.counters = Counters()
        self._lock = threading.Lock()
        self._path_locks: dict[str, threading.Lock] = {}
        self._local = threading.local()

    def count(self, **deltas: int) -> None:
        with self._lock:
            for name, delta in deltas.items():
                setattr(self.counters, name, getattr(self.counters, name) + delta)

    def snapshot(self) -> Counters:
        with self._lock:
            return dataclasses.replace(self.counters)

    def refresh(self) -> None:
        """Forget the archive state (dists/ and not-found answers); packages in pool/ stay."""
        for prefix in self.upstreams:
            shutil.rmtree(self.root / prefix / "dists", ignore_errors=True)
        shutil.rmtree(self.root / ".missing", ignore_errors=True)

    def _relative(self, url_path: str) -> str | None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(url_path).path)
        parts = path.split("/")[1:]
        if len(parts) < 2 or parts[0] not in self.upstreams or any(not p or p[0] == "." for p in parts):
            return None
        return "/".join(parts)

    def get(self, url_path: str) -> Path | None:
        """The local copy of the file at `url_path`, fetched first if need be; None when there is none."""
        rel = self._relative(url_path)
        if rel is None:
            return None
        local = self.root / rel
        marker = self.root / ".missing" / hashlib.sha256(rel.encode()).hexdigest()
        if not local.exists() and not marker.exists():
            with self._lock:
                path_lock = self._path_locks.setdefault(rel, threading.Lock())
            with path_lock:
                if not local.exists() and not marker.exists():
                    try:
                        found = self._fetch(rel, local)
                    except OSError:  # a path below a stored file, a full disk: not servable
                        self.count(errors=1)
                        return None
                    if not found:
                        marker.parent.mkdir(parents=True, exist_ok=True)
                        marker.touch()
        if local.is_file():
            self.count(served=1)
            return local
        self.count(missing=1)
        return None

    def _sources(self, prefix: str, rest: str) -> tuple[list[str], str | None]:
        """The upstream paths to try for `rest`, and the sha256 the file must have (when known)."""
        parts = rest.split("/")
        if "by-hash" in parts:
            return [rest], parts[-1] if parts[-2:-1] == ["SHA256"] else None
        if len(parts) < 3 or parts[0] != "dists" or parts[-1] in _RELEASE_FILES:
            return [rest], None
        inrelease = self.root / prefix / "dists" / parts[1] / "InRelease"
        if not inrelease.is_file():
            return [rest], None
        sums, by_hash = release_checksums(inrelease.read_text(errors="replace"))
        name = "/".join(parts[2:])
        if name not in sums:
            return [rest], None
        sha = sums[name]
        hashed = "/".join([*parts[:-1], "by-hash", "SHA256", sha])
        return ([hashed, rest] if by_hash else [rest]), sha

    def _fetch(self, rel: str, local: Path) -> bool:
        prefix, _, rest = rel.partition("/")
        paths, sha = self._sources(prefix, rest)
        base = self.upstreams[prefix]
        return any(self._download(f"{base}/{urllib.parse.quote(path)}", local, sha) for path in paths)

    def _session(self) -> requests.Session:
        s: requests.Session | None = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
            s.headers["Accept-Encoding"] = "identity"
        return s

    def _download(self, url: str, local: Path, sha: str | None) -> bool:
        """Store `url` at `local`; False when the upstream says it does not exist."""
        last = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(0.5 * 2**attempt)
            try:
                with self._session().get(url, stream=True, timeout=TIMEOUT) as resp:
                    if resp.status_code in (404, 410) or urllib.parse.urlsplit(resp.url).path.endswith("/"):
                        return False
                    if resp.status_code != 200:
                        last = f"{resp.status_code} {resp.reason}"
                        if resp.status_code >= 500:
                            continue
                        break
                    self._store(resp, local, sha, url)
                    return True
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                last = str(exc)
        raise UpstreamError(f"{url}: {last}")

    def _store(self, resp: requests.Response, local: Path, sha: str | None, url: str) -> None:
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(f".{local.name}.{threading.get_ident()}.part")
        digest, size = hashlib.sha256(), 0
        try:
            with open(tmp, "wb") as out:
                for chunk in resp.iter_content(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
            if sha is not None and digest.hexdigest() != sha:
                raise UpstreamError(
                    f"{url}: sha256 is not {sha}: the archive moved on since it was frozen (refresh it)"
                )
            modified = resp.headers.get("Last-Modified")
            stamp = email.utils.parsedate_to_datetime(modified).timestamp() if modified else None
            if stamp is not None:
                os.utime(tmp, (stamp, stamp))
            os.replace(tmp, local)
        finally:
            tmp.unlink(missing_ok=True)
        self.count(fetched=1, fetched_bytes=size)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], store: Store) -> None:
        self.store = store
        super().__init__(address, _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 120
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):
            super().handle()

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _empty(self, code: int, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if code != 304:
            self.send_header("Content-Length", "0")
        self.end_headers()

    def _not_modified(self, etag: str, mtime: float) -> bool:
        match = self.headers.get("If-None-Match")
        if match is not None:
            return etag in [m.strip() for m in match.split(",")] or match.strip() == "*"
        since = self.headers.get("If-Modified-Since")
        if since is None:
            return False
        try:
            return int(mtime) <= email.utils.parsedate_to_datetime(since).timestamp()
        except (TypeError, ValueError):
            return False

    def _answer(self, body: bool) -> None:
        store = self.server.store
        try:
            path = store.get(self.path)
        except UpstreamError:
            store.count(errors=1)
            self._empty(502)
            return
        if path is None:
            self._empty(404)
            return
        st = path.stat()
        validators = {
            "ETag": f'"{st.st_size:x}-{st.st_mtime_ns:x}"',
            "Last-Modified": email.utils.formatdate(st.st_mtime, usegmt=True),
        }
        if self._not_modified(validators["ETag"], st.st_mtime):
            self._empty(304, validators)
            return
        start, end, status = 0, st.st_size - 1, 200
        wanted, condition = self.headers.get("Range"), self.headers.get("If-Range")
        if wanted and (condition is None or condition.strip() in validators.values()):
            try:
                span = parse_range(wanted, st.st_size)
            except ValueError:
                self._empty(416, {"Content-Range": f"bytes */{st.st_size}", **validators})
                return
            if span is not None:
                (start, end), status = span, 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        for k, v in validators.items():
            self.send_header(k, v)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{st.st_size}")
        self.end_headers()
        if body and end >= start:
            with open(path, "rb") as f:
                self.connection.sendfile(f, start, end - start + 1)
            store.count(served_bytes=end - start + 1)


class FrozenMirror:
    """The store served on 127.0.0.1 from a background thread, for as long as the context lasts."""

    def __init__(self, root: Path, upstreams: Mapping[str, str], port: int = 0) -> None:
        self.store = Store(root, upstreams)
        self._httpd = _Server(("127.0.0.1", port), self.store)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="bench-mirror", daemon=True
        )

    def __enter__(self) -> "FrozenMirror":
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
