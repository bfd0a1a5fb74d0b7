"""HTTP to one registry: a session from `bootstrap.host.sessions` with the registry's TLS settings, every request
retried by `bootstrap.host.retry.call` (dropped connections, 429/5xx), redirects followed here."""

import re
import urllib.parse
from collections.abc import Iterator, Mapping
from typing import Protocol

import requests
import urllib3

from bootstrap.host import retry as retries
from bootstrap.host import sessions
from bootstrap.host.retry import CONNECT_TIMEOUT, Policy, reason
from bootstrap.log import log
from bootstrap.registry import limits, tls
from bootstrap.registry.errors import RegistryError, TransientError
from bootstrap.registry.options import Options

REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = sessions.MAX_REDIRECTS
USER_AGENT = sessions.USER_AGENT


class Stream(Protocol):
    """A request body read once per attempt: `rewind()` gives it back from its start."""

    def read(self, n: int = -1) -> bytes: ...
    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def rewind(self) -> "Stream": ...


Body = bytes | Stream | None


UNSAFE = re.compile(r"[\\\s\x00-\x1f\x7f]")
"""What no address a registry sends may hold: a backslash, white space, a control character. Parsers differ on
them (`http://A\\@B/` is host B to urllib.parse, host A to urllib3, which connects)."""


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL: credentials belong to one origin, and a redirect may leave it. The origin
    checked must be the one connected to: a URL that urllib.parse and urllib3 (requests' connector) read as two
    origins is refused, as is one holding what they read differently (`UNSAFE`)."""
    try:
        if UNSAFE.search(url):
            raise ValueError("a backslash, white space or control character")
        parts = urllib.parse.urlsplit(url)
        port = parts.port
        theirs = urllib3.util.parse_url(url)
    except ValueError as exc:
        raise RegistryError(f"{url!r} is not a valid URL ({exc})", "the registry sent a malformed address") from None
    scheme = parts.scheme.lower()
    found = scheme, (parts.hostname or "").lower(), port or (443 if scheme == "https" else 80)
    connected = (theirs.scheme or "").lower(), (theirs.host or "").lower().strip("[]"), theirs.port or found[2]
    if connected != found:
        raise RegistryError(f"{url!r} is not a valid URL (read as two hosts)", "the registry sent a malformed address")
    return found


class NotTLS(Exception):
    """The server did not complete a TLS handshake (it may speak plain HTTP)."""


class _Keep(requests.auth.AuthBase):
    """Keeps our Authorization header: without an `auth`, requests would put ~/.netrc credentials over it."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class Transport:
    """One session and one set of TLS settings for a registry host (and its token realm)."""

    def __init__(self, host: str, options: Options) -> None:
        self.host = host
        self.options = options
        self.tls = tls.for_host(host, options.ca_cert, options.certs_dir, options.insecure)
        self.session = sessions.new(self.tls, redirects=False, insecure=options.insecure)

    def close(self) -> None:
        self.session.close()
        self.tls.close()

    def tls_error(self, url: str, exc: BaseException) -> RegistryError:
        host = urllib.parse.urlsplit(url).netloc
        return RegistryError(
            f"the TLS certificate of {host} is not trusted ({reason(exc)})",
            f"pass --ca-cert FILE with the registry's CA, or put it in "
            f"{self.options.certs_dir / host / 'ca.crt'} (--insecure skips the check)",
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | list[tuple[str, str]] | None = None,
        data: Body = None,
        retry: bool = True,
        probing: bool = False,
        limit: int = limits.BODY_LIMIT,
    ) -> requests.Response:
        """One request, retried (when `retry`) on what `retry.classify` calls transient (dropped connections,
        429/5xx answers); the answer's body is read whole, up to `limit` bytes (`limits`).

        Raises TransientError when the retries run out, RegistryError on an untrusted certificate or an answer
        too large, and NotTLS (when `probing`) when the server does not speak TLS.
        """
        policy = self.options.policy if retry else Policy(attempts=1)

        def once() -> requests.Response:
            body = data.rewind() if data is not None and not isinstance(data, bytes) else data
            try:
                resp = self._exchange(method, url, dict(headers or {}), params, body)
            except requests.exceptions.SSLError as exc:
                if probing and not retries.untrusted_certificate(exc):
                    raise NotTLS(reason(exc)) from exc
                raise
            retries.check_status(resp)
            limits.read_bounded(resp, limit, method, self.host, self.options.timeout)
            return resp

        def note(failure: retries.Transient, tries: retries.Tries) -> None:
            log.debug(f"{method} {url}: {failure.why} (attempt {tries.used} of {policy.attempts})")

        try:
            return retries.call(once, policy, on_retry=note)
        except retries.GaveUp as exc:
            attempts = f" ({exc.attempts} attempts)" if exc.attempts > 1 else ""
            raise TransientError(
                f"{method} {urllib.parse.urlsplit(url).path} on {self.host}: {exc.last.why}{attempts}",
                f"check that {self.host} is reachable and healthy, then run again",
                exc.last.why,
            ) from exc
        except requests.RequestException as exc:
            if retries.untrusted_certificate(exc):
                raise self.tls_error(url, exc) from exc
            overflow = retries.header_overflow(exc)
            if overflow:
                raise limits.headers_too_large(method, url, self.host, overflow) from None
            raise RegistryError(
                f"{method} {urllib.parse.urlsplit(url).path} on {self.host}: {reason(exc)}",
                "run with --debug for the full exchange",
            ) from exc

    def _exchange(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        params: Mapping[str, str] | list[tuple[str, str]] | None,
        body: Body,
    ) -> requests.Response:
        """One request; GET and HEAD redirects are followed here, not by requests, so that the Authorization
        header goes to the origin it was written for and nowhere else: not to the storage a blob is
        redirected to, not over plain HTTP after HTTPS."""
        start = origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            resp = self.session.request(
                method,
                url,
                headers=headers,
                params=params,
                data=body,
                timeout=(CONNECT_TIMEOUT, self.options.timeout),
                allow_redirects=False,
                stream=True,
                auth=_Keep(),
            )
            target = resp.headers.get("Location")
            if method not in ("GET", "HEAD") or resp.status_code not in REDIRECT_STATUS or not target:
                return resp
            resp.close()
            url, params = urllib.parse.urljoin(resp.url, target), None
            if origin(url)[0] not in ("http", "https"):
                raise RegistryError(f"{self.host} redirected {method} to {url!r}", "the registry is misconfigured")
            if origin(url) != start:
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            log.debug(f"{method} redirected to {url}")
        raise RegistryError(
            f"{method} {urllib.parse.urlsplit(url).path} on {self.host}: more than {MAX_REDIRECTS} redirects",
            "the registry or its storage is misconfigured",
        )
