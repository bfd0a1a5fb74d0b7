"""Registry authentication as docker does it: anonymous, Basic, or Bearer tokens from the challenge's realm.

The first 401 (`WWW-Authenticate`) says which. Bearer tokens are asked for every scope the operation needs at
once (`repository:<name>:pull,push`, plus `repository:<from>:pull` for mounts), with Basic credentials when
there are some, and renewed before they expire.

The credentials go to a token realm only on the registry's own host, or on a host the user names for it
(`--token-realm`, $BOOTSTRAP_REGISTRY_TOKEN_REALMS): a registry cannot send them anywhere it likes. Another
realm is asked anonymously, with a warning, and an error that follows says what was withheld.
"""

import math
import os
import re
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field

import requests

from bootstrap.log import log
from bootstrap.numbers import is_decimal
from bootstrap.registry import credentials
from bootstrap.registry.credentials import Credentials
from bootstrap.registry.errors import RegistryError
from bootstrap.registry.reference import is_loopback
from bootstrap.registry.transport import Transport, origin

_PARAM = re.compile(r'([A-Za-z_][\w-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^,\s]*)')
DEFAULT_TOKEN_LIFE = 60
"""Seconds a token lives when the server does not say (the token spec's default)."""
MAX_TOKEN_LIFE = 24 * 3600
"""The longest a token is kept, whatever the server says: a renewal a day costs nothing."""
REALMS_ENV = "BOOTSTRAP_REGISTRY_TOKEN_REALMS"
"""Comma-separated hosts (HOST or HOST:PORT) trusted as token realms, beside --token-realm."""


def realm_trusted(registry: str, realm: str, allowed: Iterable[str]) -> bool:
    """The realm is on the registry's own host (any port), or on a host the user named (HOST or HOST:PORT); never
    an address that reads as two hosts (`transport.origin`)."""
    try:
        _, host, port = origin(realm)
    except RegistryError:
        return False
    if host == (urllib.parse.urlsplit(f"//{registry}").hostname or "").lower():
        return True
    named = {a.strip().lower() for a in allowed if a.strip()}
    return host in named or f"{host}:{port}" in named


def trusted_realms(named: Iterable[str]) -> list[str]:
    """--token-realm's hosts and those of $BOOTSTRAP_REGISTRY_TOKEN_REALMS."""
    return [*named, *os.environ.get(REALMS_ENV, "").split(",")]


def token_life(expires_in: object) -> int:
    """Seconds a token answer's `expires_in` gives it, clamped to MAX_TOKEN_LIFE; DEFAULT_TOKEN_LIFE when it
    gives no sensible number. A hostile token server's `1e400` (an infinite float) must not crash int()."""
    if isinstance(expires_in, str) and is_decimal(expires_in.strip()):
        expires_in = int(expires_in)
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float):
        return DEFAULT_TOKEN_LIFE
    if not math.isfinite(expires_in) or expires_in <= 0:
        return DEFAULT_TOKEN_LIFE
    return int(min(expires_in, MAX_TOKEN_LIFE))


@dataclass(frozen=True)
class Challenge:
    scheme: str
    """`basic` or `bearer`, lowercased."""
    params: dict[str, str] = field(default_factory=dict)

    @property
    def scopes(self) -> list[str]:
        return self.params.get("scope", "").split()


def parse_challenge(header: str | None) -> Challenge | None:
    """`Bearer realm="...",service="...",scope="..."` -> Challenge('bearer', {...})."""
    if not header or not header.strip():
        return None
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for key, value in _PARAM.findall(rest):
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[key.lower()] = value
    return Challenge(scheme.lower(), params)


class Auth:
    """The Authorization header for the next request to one registry, and what a 401 teaches."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.host = transport.host
        self.challenge: Challenge | None = None
        self.scopes: list[str] = []
        self._creds: Credentials | None = None
        self._creds_loaded = False
        self._token: str | None = None
        self._token_scopes: list[str] = []
        self._token_expires = 0.0
        self.tokens_refused = 0
        """Bearer tokens the registry refused (with a 401) before they were due to expire."""
        self.withheld: str | None = None
        """The token realm (host) the credentials were withheld from: on another host, not named trusted."""

    @property
    def credentials(self) -> Credentials | None:
        """Looked up on first need, so an anonymous registry never runs a credential helper."""
        if not self._creds_loaded:
            opts = self.transport.options
            self._creds = credentials.lookup(self.host, opts.creds, opts.docker_config)
            self._creds_loaded = True
        return self._creds

    def add_scope(self, scope: str) -> None:
        if scope not in self.scopes:
            self.scopes.append(scope)

    def header(self) -> str | None:
        ch = self.challenge
        if ch is None:
            return None
        if ch.scheme == "basic":
            creds = self.credentials
            return creds.basic() if creds is not None and creds.identity_token is None else None
        if ch.scheme == "bearer":
            if self._token is None or self._token_scopes != self.scopes or time.monotonic() > self._token_expires:
                self._fetch_token(ch)
            return f"Bearer {self._token}"
        return None

    def on_401(self, resp: requests.Response) -> bool:
        """Learn from a 401; True when another try with a new Authorization header may succeed."""
        ch = parse_challenge(resp.headers.get("WWW-Authenticate"))
        if ch is None or ch.scheme not in ("basic", "bearer"):
            return False
        changed = self.challenge is None or (ch.scheme, ch.params.get("realm")) != (
            self.challenge.scheme,
            self.challenge.params.get("realm"),
        )
        self.challenge = ch
        if ch.scheme == "basic":
            return changed and self.credentials is not None
        for scope in ch.scopes:
            if scope not in self.scopes:
                self.scopes.append(scope)
                changed = True
        sent = resp.request.headers.get("Authorization") if resp.request is not None else None
        if self._token is not None and sent == f"Bearer {self._token}" and not self.denied():
            changed = True  # the token expired or was revoked before the time it was given for: ask for another
            self.tokens_refused += 1
        if changed:
            self._token = None
        return changed

    def denied(self) -> bool:
        """The last challenge says the credentials were fine but the access is not granted."""
        return self.challenge is not None and self.challenge.params.get("error") == "insufficient_scope"

    def _fetch_token(self, ch: Challenge) -> None:
        realm = ch.params.get("realm")
        if not realm:
            raise RegistryError(
                f"{self.host} asked for a Bearer token without a realm", "the registry is misconfigured"
            )
        origin(realm)  # one host, whatever reads it, before anything is asked of it
        creds = self.credentials
        parsed = urllib.parse.urlsplit(realm)
        allowed = trusted_realms(self.transport.options.token_realms)
        if creds is not None and not realm_trusted(self.host, realm, allowed):
            if self.withheld != parsed.netloc:
                log.warning(
                    f"{self.host} names {parsed.netloc} as its token server: not sending it the credentials "
                    f"(from {creds.source}) and asking anonymously; {self._allow(parsed.netloc)}"
                )
            self.withheld, creds = parsed.netloc, None
        if creds and parsed.scheme != "https" and not (self.transport.options.insecure or is_loopback(parsed.netloc)):
            raise RegistryError(
                f"{self.host} sends credentials to {realm}, which is not HTTPS",
                "refusing to send a password in clear text; use --insecure only on a network you trust",
            )
        scopes = list(self.scopes)
        service = ch.params.get("service")
        if creds is not None and creds.identity_token is not None:
            form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token, "client_id": "bootstrap"}
            if service:
                form["service"] = service
            if scopes:
                form["scope"] = " ".join(scopes)
            body = urllib.parse.urlencode(form).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            resp = self.transport.send("POST", realm, headers=headers, data=body)
        else:
            params = [("service", service)] if service else []
            params += [("scope", s) for s in scopes]
            headers = {}
            if creds is not None:
                params.append(("account", creds.username))
                headers["Authorization"] = creds.basic()
            resp = self.transport.send("GET", realm, headers=headers, params=params)
        if resp.status_code in (401, 403):
            raise self.credentials_error(f"the token server {parsed.netloc}")
        if resp.status_code != 200:
            raise RegistryError(
                f"the token server {parsed.netloc} answered {resp.status_code} {resp.reason}",
                f"check the registry's auth configuration; {credentials.login_hint(self.host)}",
            )
        try:
            answer = resp.json()
            token = answer.get("token") or answer.get("access_token")
            life = token_life(answer.get("expires_in"))
        except (ValueError, AttributeError, TypeError, RecursionError) as exc:
            raise RegistryError(f"the token server {parsed.netloc} gave an unreadable answer", str(exc)) from exc
        if not token:
            raise RegistryError(f"the token server {parsed.netloc} gave no token", "check the registry's auth setup")
        self._token, self._token_scopes = str(token), scopes
        self._token_expires = time.monotonic() + max(life - 10, 1)

    def _allow(self, realm: str) -> str:
        return f"if {realm} is the token server of {self.host}, pass --token-realm {realm} (or set {REALMS_ENV})"

    def withheld_error(self, what: str) -> RegistryError:
        """Access refused to the anonymous token asked for instead of sending the credentials to another host."""
        realm = self.withheld or ""
        return RegistryError(
            f"{what}: {self.host} refused an anonymous token; the credentials for {self.host} were withheld "
            f"from its token realm {realm}, another host",
            self._allow(realm),
        )

    def credentials_error(self, where: str | None = None) -> RegistryError:
        if self.withheld:
            return self.withheld_error(where or self.host)
        where = f"{where} (for {self.host})" if where else self.host
        creds = self.credentials
        if creds is None:
            return RegistryError(f"{where} requires authentication", credentials.login_hint(self.host))
        who = "the identity token" if creds.identity_token else f"the credentials of {creds.username!r}"
        return RegistryError(
            f"{where} rejected {who} (from {creds.source})",
            "check the user name and password; " + credentials.login_hint(self.host),
        )
