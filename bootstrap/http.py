"""The one way to the network: timeouts, retries with backoff, proxies from the environment.

Bodies are stored exactly as the server sent them (no Content-Encoding decoding: a `Packages.gz` is checked
against its signed checksum as the gzip file it is), and never beyond the size the signed index gives: a
hostile or broken mirror cannot fill the disk. Files no index sizes (InRelease) are capped at MAX_UNSIZED.
"""

import os
import shutil
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import requests
import urllib3

from bootstrap.errors import ChecksumError, MirrorError, NetworkError

TIMEOUT = (10, 60)
RETRIES = 4
BACKOFF = 0.5
CHUNK = 1 << 20
MAX_UNSIZED = 16 << 20
"""The most bytes read for a file whose size no signed index gives (InRelease is a few hundred kB)."""

_local = threading.local()
T = TypeVar("T")


class NotFound(NetworkError):
    """The server answered 404 or 410: the file is not there."""


class TooLarge(ChecksumError):
    """The server sends more bytes than the signed index gives (or than MAX_UNSIZED): the body cannot match."""

    def __init__(self, url: str, limit: int, sized: bool) -> None:
        bound = f"the {limit} bytes its signed index gives" if sized else f"{limit} bytes (the limit for this file)"
        super().__init__(
            f"{url}: the server sends more than {bound}; download stopped",
            "the mirror may be syncing, broken or hostile: retry later or use another --mirror",
        )


def session() -> requests.Session:
    """A per-thread session, so parallel downloads reuse connections without sharing one pool."""
    s: requests.Session | None = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        s.headers["User-Agent"] = "bootstrap (container image builder)"
        s.headers["Accept-Encoding"] = "identity"
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=8)
        s.mount("http://", adapter)
        s.mount("https://", adapter)
        _local.session = s
    return s


def _local_path(url: str) -> Path | None:
    try:
        parsed = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise MirrorError(f"{url!r} is not a valid URL ({exc})", "check the mirror URL") from None
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
            urllib3.exceptions.HTTPError,
        ) as exc:
            last = exc
        except requests.RequestException as exc:
            raise NetworkError(f"cannot download {url}: {exc}", "check the mirror URL") from exc
    host = urllib.parse.urlsplit(url).netloc
    raise NetworkError(
        f"cannot download {url}: {last}",
        f"check that {host} is reachable (proxy settings come from http_proxy/https_proxy) or pass another --mirror",
    )


Headers = requests.structures.CaseInsensitiveDict[str]


def _receive(resp: requests.Response, url: str, limit: int, sized: bool, write: Callable[[bytes], object]) -> int:
    """Pass the body, exactly as received, to `write`; stop with TooLarge before going past `limit` bytes."""
    announced = resp.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > limit:
        raise TooLarge(url, limit, sized)
    done = 0
    while data := resp.raw.read(min(CHUNK, limit + 1 - done), decode_content=False):
        if done + len(data) > limit:
            raise TooLarge(url, limit, sized)
        write(data)
        done += len(data)
    return done


def _local_file(local: Path, url: str, limit: int, sized: bool) -> None:
    if not local.is_file():
        raise NotFound(f"{url} does not exist", "check the mirror path")
    if local.stat().st_size > limit:
        raise TooLarge(url, limit, sized)


def download(
    url: str,
    dest: Path,
    progress: Callable[[int], None] | None = None,
    headers: dict[str, str] | None = None,
    size: int | None = None,
) -> Headers | None:
    """Download `url` to `dest` (written whole or not at all) and return the response headers.

    `size` is the size the signed index gives: the download stops with TooLarge as soon as the body goes past
    it (past MAX_UNSIZED when no size is known). The body is stored as sent, whatever its Content-Encoding.
    Returns None when `headers` asked a conditional question and the server answered 304 Not Modified.
    Retries dropped connections and 5xx answers with exponential backoff; a 404 raises NotFound at once.
    """
    limit = MAX_UNSIZED if size is None else size
    local = _local_path(url)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    if local is not None:
        _local_file(local, url, limit, size is not None)
        shutil.copyfile(local, tmp)
        os.replace(tmp, dest)
        if progress:
            progress(dest.stat().st_size)
        return requests.structures.CaseInsensitiveDict()

    def once() -> Headers | None:
        done = 0

        def write(data: bytes) -> None:
            nonlocal done
            out.write(data)
            done += len(data)
            if progress:
                progress(len(data))

        try:
            with session().get(url, stream=True, timeout=TIMEOUT, headers=headers or {}) as resp:
                if resp.status_code == 304:
                    return None
                _check(resp, url)
                with open(tmp, "wb") as out:
                    _receive(resp, url, limit, size is not None, write)
                os.replace(tmp, dest)
                return resp.headers
        except BaseException:
            if progress and done:
                progress(-done)
            raise
        finally:
            tmp.unlink(missing_ok=True)

    return _retrying(url, once)


def fetch_bytes(url: str, size: int | None = None) -> bytes:
    """Download a small file into memory (with the same retries and size limit as `download`)."""
    limit = MAX_UNSIZED if size is None else size
    local = _local_path(url)
    if local is not None:
        _local_file(local, url, limit, size is not None)
        return local.read_bytes()

    def once() -> bytes:
        parts: list[bytes] = []
        with session().get(url, stream=True, timeout=TIMEOUT) as resp:
            _check(resp, url)
            _receive(resp, url, limit, size is not None, parts.append)
        return b"".join(parts)

    return _retrying(url, once)
