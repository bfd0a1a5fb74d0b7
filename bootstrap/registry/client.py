"""One registry host: picks https or http, authenticates, and turns error answers into one-line errors."""

import urllib.parse
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import requests

from bootstrap.log import log
from bootstrap.registry import credentials
from bootstrap.registry.auth import Auth
from bootstrap.registry.errors import MissingBlobs, RegistryError, TransientError
from bootstrap.registry.limits import BODY_LIMIT
from bootstrap.registry.options import Options
from bootstrap.registry.reference import is_loopback
from bootstrap.registry.transport import Body, NotTLS, Transport, origin


def error_detail(resp: requests.Response) -> str:
    """`CODE: message` of a registry's JSON error body, else its status line."""
    try:
        errors = resp.json().get("errors") or []
        parts = [f"{e.get('code', '?')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict)]
    except (ValueError, AttributeError, TypeError, RecursionError):
        parts = []
    return "; ".join(parts) or f"{resp.status_code} {resp.reason}"


def error_codes(resp: requests.Response) -> set[str]:
    try:
        return {str(e.get("code")) for e in resp.json().get("errors") or [] if isinstance(e, dict)}
    except (ValueError, AttributeError, TypeError, RecursionError):
        return set()


class Client:
    """Requests to one registry host, the reference's own. Use as a context manager; paths are relative to its
    base URL."""

    def __init__(self, host: str, options: Options) -> None:
        self.host = host
        self.options = options
        self.transport = Transport(self.host, options)
        self.auth = Auth(self.transport)
        self._base: str | None = None

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def need(self, repository: str, actions: str) -> None:
        """Ask for this access in the Bearer token (`pull` or `pull,push`)."""
        self.auth.add_scope(f"repository:{repository}:{actions}")

    @property
    def base(self) -> str:
        if self._base is None:
            self._base = self._ping()
        return self._base

    def _ping(self) -> str:
        """`GET /v2/` over https, then over http where allowed: loopback hosts, or --insecure."""
        schemes = ["https", "http"] if self.options.insecure or is_loopback(self.host) else ["https"]
        for scheme in schemes:
            url = f"{scheme}://{self.host}/v2/"
            try:
                resp = self.transport.send("GET", url, probing=True)
            except NotTLS as exc:
                if scheme != schemes[-1]:
                    log.debug(f"{self.host} does not speak TLS ({exc}); trying plain HTTP")
                    continue
                raise RegistryError(
                    f"TLS handshake with {self.host} failed ({exc})",
                    "if the registry serves plain HTTP, pass --insecure (only on a network you trust)",
                ) from exc
            except TransientError as exc:
                raise RegistryError(f"cannot reach the registry {self.host}: {exc.message}", exc.hint) from exc
            if resp.status_code == 401:
                self.auth.on_401(resp)
            elif resp.status_code != 200:
                raise RegistryError(
                    f"{self.host} is not a container registry (GET /v2/ answered {resp.status_code} {resp.reason})",
                    "check the host and port of the reference",
                )
            if scheme == "http":
                say = log.debug if is_loopback(self.host) else log.warning
                say(f"{self.host}: using plain HTTP")
            return f"{scheme}://{self.host}"
        raise AssertionError("unreachable")

    def url(self, path_or_url: str) -> str:
        return urllib.parse.urljoin(self.base + "/", path_or_url)

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        expect: tuple[int, ...] = (200,),
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        data: Body = None,
        retry: bool = True,
        limit: int = BODY_LIMIT,
    ) -> requests.Response:
        """Send, authenticate on 401, and return the answer when its status is in `expect`; else raise.

        `what` names the operation for error messages ("push of sha256:... to debian"). At most `limit` bytes
        of the answer are read (`limits`).
        """
        url = self.url(path)
        home = origin(self.base)
        ours = origin(url) == home
        for _ in range(3):
            sent = dict(headers or {})
            authorization = self.auth.header() if ours else None
            if authorization:
                sent["Authorization"] = authorization
            resp = self.transport.send(method, url, headers=sent, params=params, data=data, retry=retry, limit=limit)
            log.debug(f"{method} {resp.url} -> {resp.status_code}")
            answered_by_us = origin(resp.url) == home
            if resp.status_code == 401 and ours and answered_by_us and self.auth.on_401(resp):
                continue
            break
        if resp.status_code in expect:
            return resp
        if resp.status_code == 401 and not answered_by_us:
            where = urllib.parse.urlsplit(resp.url)
            raise RegistryError(
                f"{what}: {where.scheme}://{where.netloc} asks for credentials, which are only sent to {self.base}",
                "the registry sends this request to another host or over plain HTTP: check its configuration",
            )
        raise self.error(resp, what)

    def error(self, resp: requests.Response, what: str) -> RegistryError:
        detail = error_detail(resp)
        codes = error_codes(resp)
        creds = self.auth.credentials if resp.status_code in (401, 403) else None
        who = f"{creds.username!r}" if creds and not creds.identity_token else "this account" if creds else "anonymous"
        if resp.status_code in (401, 403) and self.auth.withheld:
            return self.auth.withheld_error(what)
        if resp.status_code == 401 and self.auth.tokens_refused and not self.auth.denied():
            realm = urllib.parse.urlsplit(self.auth.challenge.params.get("realm", "") if self.auth.challenge else "")
            return RegistryError(
                f"{what}: {self.host} refused {self.auth.tokens_refused} Bearer tokens that its token server "
                f"{realm.netloc} had just given",
                "the registry and its token server disagree (clocks out of step, or a signing key mismatch): "
                "check their configuration",
            )
        if (resp.status_code == 401 and not self.auth.denied()) or (resp.status_code in (401, 403) and creds is None):
            return self.auth.credentials_error()
        if resp.status_code in (401, 403):
            return RegistryError(
                f"{what}: {self.host} denied access to {who} ({detail})",
                "the account needs pull and push access to the repository; " + credentials.login_hint(self.host),
            )
        if codes & {"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN"}:
            return MissingBlobs(f"{what}: {self.host} answered {resp.status_code} ({detail})", _hint(codes))
        if resp.status_code == 404 and "NAME_UNKNOWN" in codes:
            return RegistryError(f"{what}: no such repository on {self.host} ({detail})", "check the repository name")
        if resp.status_code == 404:
            return RegistryError(f"{what}: not found on {self.host} ({detail})", "check the name, tag or digest")
        return RegistryError(f"{what}: {self.host} answered {resp.status_code} ({detail})", _hint(codes))


def _hint(codes: set[str]) -> str:
    if "DIGEST_INVALID" in codes:
        return "the data sent does not match its digest: is the image layout damaged? rebuild it"
    if codes & {"MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN", "MANIFEST_UNKNOWN"}:
        return "a blob or manifest it refers to is missing from the repository: push again"
    if codes & {"NAME_INVALID", "TAG_INVALID"}:
        return "check the repository name and tag"
    if "UNSUPPORTED" in codes:
        return "this registry does not support the operation or media type"
    return "run with --debug for the full exchange"


def location(resp: requests.Response) -> str:
    """The absolute URL in an answer's Location header."""
    loc = resp.headers.get("Location")
    if not loc:
        raise RegistryError(f"{resp.request.method} {resp.url}: no Location in the answer", "the registry is broken")
    return urllib.parse.urljoin(resp.url, loc)


def with_query(url: str, **params: Any) -> str:
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.urlencode([*urllib.parse.parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return urllib.parse.urlunsplit(parts._replace(query=query))
