"""Mirror downloads: sessions from `bootstrap.host.sessions` (timeouts, proxies from the environment, TLS),
retries by `bootstrap.host.retry.call` (its one classification of transient failures), resumed downloads.

Bodies are stored exactly as the server sent them (no Content-Encoding decoding: a `Packages.gz` is checked
against its signed checksum as the gzip file it is), and never beyond the size the signed index gives: a
hostile or broken mirror cannot fill the disk. Files no index sizes (InRelease) are capped at MAX_UNSIZED.

What is retried is what `retry.classify` calls transient: refused or dropped connections, 429 and 5xx answers,
a body cut short, a stalled body (see `retry.Pace`), and a body that does not match the sha256 its signed index
gives. A download cut short goes on from where it stopped (a Range request, when the server names the version
it sent with an ETag or Last-Modified). What is not: 404 (NotFound), other 4xx answers, redirect loops, an
untrusted certificate. Every failure is one line naming the URL and the cause.

requests (and the sessions built on it) load with the first download, not with every command that imports this.
"""

from __future__ import annotations

import os
import shutil
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from bootstrap.errors import ChecksumError, MirrorError, NetworkError
from bootstrap.host import retry
from bootstrap.host.cache import sha256_file
from bootstrap.log import log
from bootstrap.numbers import is_decimal

if TYPE_CHECKING:
    import requests

    Headers = requests.structures.CaseInsensitiveDict[str]

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
    """A per-thread session (`sessions.new`), so parallel downloads reuse connections without sharing one pool."""
    s: requests.Session | None = getattr(_local, "session", None)
    if s is None:
        from bootstrap.host import sessions

        s = sessions.new(pool=(4, 8), headers={"Accept-Encoding": "identity"})
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


def _check(resp: requests.Response, url: str) -> None:
    if resp.status_code in (404, 410):
        raise NotFound(f"{url}: {resp.status_code} {resp.reason}", "check the mirror URL and suite")
    retry.check_status(resp)
    if resp.status_code >= 400:
        raise NetworkError(f"{url}: {resp.status_code} {resp.reason}", "check the mirror URL and your access to it")


def _retrying(url: str, attempt_once: Callable[[], T]) -> T:
    import requests

    from bootstrap.host.sessions import MAX_REDIRECTS, Downgrade

    def note(failure: retry.Transient, tries: retry.Tries) -> None:
        log.debug("%s: %s (attempt %d of %d)", url, failure.why, tries.used, tries.policy.attempts)

    try:
        return retry.call(attempt_once, on_retry=note)
    except retry.GaveUp as exc:
        why, tried = exc.last.why, f"{exc.attempts} attempts"
        if exc.last.mismatch:
            raise ChecksumError(
                f"checksum mismatch for {url}: {why} ({tried})",
                "the mirror may be syncing or corrupt: retry later or use another --mirror",
            ) from None
        host = urllib.parse.urlsplit(url).netloc
        raise NetworkError(
            f"cannot download {url}: {why} ({tried})",
            f"check that {host} is reachable (proxy settings come from http_proxy/https_proxy) "
            "or pass another --mirror",
        ) from exc
    except Downgrade as exc:
        raise NetworkError(
            f"cannot download {url}: {exc}",
            "what is asked for by https:// is only taken by https://: name the place it redirects to yourself",
        ) from exc
    except requests.TooManyRedirects as exc:
        raise NetworkError(
            f"cannot download {url}: more than {MAX_REDIRECTS} redirects",
            "the mirror (or a proxy on the way) redirects in a loop: pass another --mirror",
        ) from exc
    except requests.RequestException as exc:
        hint = (
            "the mirror's certificate is not trusted: install its CA in the system's store (or name it in "
            "$REQUESTS_CA_BUNDLE)"
            if retry.untrusted_certificate(exc)
            else "check the mirror URL"
        )
        raise NetworkError(f"cannot download {url}: {retry.reason(exc)}", hint) from exc


def _receive(
    resp: requests.Response, url: str, limit: int, sized: bool, write: Callable[[bytes], object], have: int = 0
) -> int:
    """Pass the body, exactly as received, to `write`; stop with TooLarge before going past `limit` bytes (`have`
    of them already received), and with retry.Transient when it stalls."""
    announced = resp.headers.get("Content-Length", "")
    if is_decimal(announced) and have + int(announced) > limit:
        raise TooLarge(url, limit, sized)
    read = getattr(resp.raw, "read1", None) or resp.raw.read  # read1: what arrived, so a drip is seen
    pace = retry.Pace()
    done = have
    while data := read(min(CHUNK, limit + 1 - done), decode_content=False):
        if done + len(data) > limit:
            raise TooLarge(url, limit, sized)
        write(data)
        done += len(data)
        stalled = pace.received(len(data))
        if stalled:
            raise retry.Transient(stalled)
    return done - have


def _local_file(local: Path, url: str, limit: int, sized: bool) -> None:
    if not local.is_file():
        raise NotFound(f"{url} does not exist", "check the mirror path")
    if local.stat().st_size > limit:
        raise TooLarge(url, limit, sized)


@dataclass
class _Partial:
    """What a download cut short left: its bytes stay in the temporary file for the next attempt to go on from,
    when the server named the version it was sending."""

    validator: str | None = None
    counted: int = 0
    """Bytes reported to `progress` so far."""

    def offset(self, tmp: Path) -> int:
        if self.validator is None:
            return 0
        try:
            return tmp.stat().st_size
        except FileNotFoundError:
            return 0


def _validator(resp: requests.Response) -> str | None:
    """What If-Range may name: a strong ETag, else Last-Modified; None when the server gives neither."""
    etag = resp.headers.get("ETag", "")
    if etag and not etag.startswith("W/"):
        return etag
    return resp.headers.get("Last-Modified") or None


def _continues(resp: requests.Response, offset: int) -> bool:
    return resp.status_code == 206 and resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-")


def download(
    url: str,
    dest: Path,
    progress: Callable[[int], None] | None = None,
    headers: dict[str, str] | None = None,
    size: int | None = None,
    sha256: str | None = None,
) -> Headers | None:
    """Download `url` to `dest` (written whole or not at all) and return the response headers.

    `size` and `sha256` are what the signed index gives: the download stops with TooLarge as soon as the body
    goes past the size (past MAX_UNSIZED when no size is known), and a body of another size or sha256 is
    fetched again, then refused with ChecksumError. The body is stored as sent, whatever its Content-Encoding.
    Returns None when `headers` asked a conditional question and the server answered 304 Not Modified.
    Retries as the module docstring says; a 404 raises NotFound at once.
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
        from requests.structures import CaseInsensitiveDict

        return CaseInsensitiveDict()
    partial = _Partial()

    def count(n: int) -> None:
        partial.counted += n
        if progress:
            progress(n)

    def once() -> Headers | None:
        have = partial.offset(tmp) if headers is None else 0
        if have >= limit:  # whole, yet refused (a stall noticed after the last byte): fetch it again
            have = 0
        sent = dict(headers or {})
        if have:
            sent |= {"Range": f"bytes={have}-", "If-Range": str(partial.validator)}
        with session().get(url, stream=True, timeout=retry.timeouts(), headers=sent) as resp:
            if resp.status_code == 304:
                return None
            _check(resp, url)
            if have and not _continues(resp, have):
                have = 0
            if have:
                log.debug("%s: going on from byte %d", url, have)
            else:
                count(-partial.counted)
                partial.validator = _validator(resp)
            with open(tmp, "ab" if have else "wb") as out:
                total = have + _receive(resp, url, limit, size is not None, lambda b: count(out.write(b)), have)
            if size is not None and total != size:
                raise retry.Transient(f"the body ended after {total} of {size} bytes")
            if sha256 is not None and (actual := sha256_file(tmp)) != sha256:
                partial.validator = None
                raise retry.Transient(f"expected sha256 {sha256}, got {actual}", mismatch=True)
            os.replace(tmp, dest)
            return resp.headers

    try:
        return _retrying(url, once)
    finally:
        tmp.unlink(missing_ok=True)


def fetch_bytes(url: str, size: int | None = None) -> bytes:
    """Download a small file into memory (with the same retries and size limit as `download`)."""
    limit = MAX_UNSIZED if size is None else size
    local = _local_path(url)
    if local is not None:
        _local_file(local, url, limit, size is not None)
        return local.read_bytes()

    def once() -> bytes:
        parts: list[bytes] = []
        with session().get(url, stream=True, timeout=retry.timeouts()) as resp:
            _check(resp, url)
            _receive(resp, url, limit, size is not None, parts.append)
        return b"".join(parts)

    return _retrying(url, once)
