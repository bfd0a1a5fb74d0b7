"""The one way to the network: timeouts, retries with backoff, proxies from the environment."""

import os
import shutil
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import requests

from bootstrap.errors import MirrorError, NetworkError

TIMEOUT = (10, 60)
RETRIES = 4
BACKOFF = 0.5
CHUNK = 1 << 20

_local = threading.local()
T = TypeVar("T")


class NotFound(NetworkError):
    """The server answered 404 or 410: the file is not there."""


def session() -> requests.Session:
    """A per-thread session, so parallel downloads reuse connections without sharing one pool."""
    s: requests.Session | None = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        s.headers["User-Agent"] = "bootstrap (container image builder)"
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=8)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        _local.session = s
    return s


def _local_path(url: str) -> Path | None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    if parsed.scheme in ("http", "https"):
        return None
    raise MirrorError(f"unsupported URL scheme in {url!r}", "use an http://, https:// or file:// mirror URL")


class _Retry(Exception):
    """A 5xx answer: worth another try."""


def _check(resp: requests.Response, url: str) -> None:
    if resp.status_code in (404, 410):
        raise NotFound(f"{url}: {resp.status_code} {resp.reason}", "check the mirror URL and suite")
    if resp.status_code >= 500:
        raise _Retry(f"{url}: {resp.status_code} {resp.reason}")
    if resp.status_code >= 400:
        raise NetworkError(f"{url}: {resp.status_code} {resp.reason}", "check the mirror URL and your access to it")


def _retrying(url: str, attempt_once: Callable[[], T]) -> T:
    last: Exception | None = None
    for attempt in range(RETRIES + 1):
        if attempt:
            time.sleep(BACKOFF * 2 ** (attempt - 1))
        try:
            return attempt_once()
        except (
            _Retry,
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as exc:
            last = exc
    host = urllib.parse.urlsplit(url).netloc
    raise NetworkError(
        f"cannot download {url}: {last}",
        f"check that {host} is reachable (proxy settings come from http_proxy/https_proxy) or pass another --mirror",
    )


Headers = requests.structures.CaseInsensitiveDict[str]


def download(
    url: str,
    dest: Path,
    progress: Callable[[int], None] | None = None,
    headers: dict[str, str] | None = None,
) -> Headers | None:
    """Download `url` to `dest` (written whole or not at all) and return the response headers.

    Returns None when `headers` asked a conditional question and the server answered 304 Not Modified.
    Retries dropped connections and 5xx answers with exponential backoff; a 404 raises NotFound at once.
    """
    local = _local_path(url)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    if local is not None:
        if not local.is_file():
            raise NotFound(f"{url} does not exist", "check the mirror path")
        shutil.copyfile(local, tmp)
        os.replace(tmp, dest)
        if progress:
            progress(dest.stat().st_size)
        return requests.structures.CaseInsensitiveDict()

    def once() -> Headers | None:
        done = 0
        try:
            with session().get(url, stream=True, timeout=TIMEOUT, headers=headers or {}) as resp:
                if resp.status_code == 304:
                    return None
                _check(resp, url)
                with open(tmp, "wb") as out:
                    for chunk in resp.iter_content(CHUNK):
                        out.write(chunk)
                        done += len(chunk)
                        if progress:
                            progress(len(chunk))
                os.replace(tmp, dest)
                return resp.headers
        except BaseException:
            if progress and done:
                progress(-done)
            raise
        finally:
            tmp.unlink(missing_ok=True)

    return _retrying(url, once)


def fetch_bytes(url: str) -> bytes:
    """Download a small file into memory (with the same retries as `download`)."""
    local = _local_path(url)
    if local is not None:
        if not local.is_file():
            raise NotFound(f"{url} does not exist", "check the mirror path")
        return local.read_bytes()

    def once() -> bytes:
        resp = session().get(url, timeout=TIMEOUT)
        _check(resp, url)
        return resp.content

    return _retrying(url, once)
