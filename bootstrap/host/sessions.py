"""The one HTTP session factory: mirrors (`bootstrap.host.http`), registries and webhooks all get theirs here.

A session from `new()` has:
- time-outs on every request: (CONNECT_TIMEOUT, `$BOOTSTRAP_NET_TIMEOUT`) unless the request gives its own;
- proxies from the environment (http_proxy, https_proxy, no_proxy), as requests reads them;
- one TLS setting (`TLS`) that the environment cannot override behind the caller's back: by default the CA
  file named by $REQUESTS_CA_BUNDLE or $CURL_CA_BUNDLE, else the system's CAs; for a registry, the system's
  CAs plus its certs.d CAs and --ca-cert, bundled by `trust` (a requests session would otherwise let
  $REQUESTS_CA_BUNDLE replace them), and a client certificate;
- redirects followed (at most MAX_REDIRECTS), never from https to plain http (`Downgrade`, as apt refuses
  them: what was asked for over TLS, a metalink that vouches for unsigned metadata say, comes over TLS), or,
  with `redirects=False`, never: not even read, so a 3xx answer's body stays unread and the caller decides
  (registries follow them themselves, keeping credentials to their origin; webhooks do not follow them at all);
- our User-Agent.
"""

import os
import ssl
import tempfile
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import requests.adapters
import urllib3

from bootstrap.host import retry

USER_AGENT = "bootstrap (container image builder)"
MAX_REDIRECTS = 10
_SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/cert.pem",  # Alpine, BSDs
)
_BUNDLE_ENV = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def system_bundle() -> str | None:
    """The CA file OpenSSL uses ($SSL_CERT_FILE first), else a distribution's usual bundle, else certifi's."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, *_SYSTEM_BUNDLES):
        if candidate and Path(candidate).is_file():
            return candidate
    try:
        import certifi

        return str(certifi.where())
    except ImportError:
        return None


@dataclass
class TLS:
    """What a session trusts (`verify`: a CA file, True for requests' own, False for nothing) and presents."""

    verify: str | bool
    cert: tuple[str, str] | None = None
    extra_cas: list[Path] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def default_tls() -> TLS:
    """The CA file the environment names ($REQUESTS_CA_BUNDLE, $CURL_CA_BUNDLE), else the system's CAs."""
    named = next((os.environ[name] for name in _BUNDLE_ENV if os.environ.get(name)), None)
    return TLS(named or system_bundle() or True)


def trust(extra_cas: Iterable[Path] = (), cert: tuple[str, str] | None = None, insecure: bool = False) -> TLS:
    """The system's CAs plus `extra_cas` (bundled into a temporary file, removed by `TLS.close`), presenting
    `cert`; with `insecure`, nothing is verified."""
    extra = list(extra_cas)
    if insecure:
        return TLS(False, cert, extra)
    system = system_bundle()
    if not extra:
        return TLS(system or True, cert)
    tmp = tempfile.TemporaryDirectory(prefix="bootstrap-ca-")
    bundle = Path(tmp.name) / "ca.pem"
    parts = [Path(system).read_bytes()] if system else []
    parts += [p.read_bytes() for p in extra]
    bundle.write_bytes(b"\n".join(parts))
    return TLS(str(bundle), cert, extra, tmp)


class Adapter(requests.adapters.HTTPAdapter):
    """Gives every request the time-outs of `retry.timeouts()` when it gives none."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        if len(args) < 2 and kwargs.get("timeout") is None:
            kwargs["timeout"] = retry.timeouts()
        return super().send(request, *args, **kwargs)


class Session(requests.Session):
    """A requests session whose TLS setting wins over the environment's and which may refuse redirects."""

    def __init__(self, tls: TLS, redirects: bool) -> None:
        super().__init__()
        self.verify = tls.verify
        self.cert = tls.cert
        self.redirects = redirects

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        """Proxies from the environment; the CA file from ours (requests would take $REQUESTS_CA_BUNDLE's)."""
        return super().merge_environment_settings(url, proxies, stream, self.verify if verify is None else verify, cert)

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        """None without `redirects`: requests then neither follows a redirect nor reads its body. A redirect from
        https to plain http raises `Downgrade`."""
        target = super().get_redirect_target(resp) if self.redirects else None
        if target is not None and urllib.parse.urlsplit(resp.url).scheme.lower() == "https":
            to = urllib.parse.urljoin(resp.url, target)
            if urllib.parse.urlsplit(to).scheme.lower() != "https":
                raise Downgrade(f"{resp.url} redirects to {to}, off https", response=resp)
        return target


class Downgrade(requests.exceptions.InvalidSchema):
    """A redirect from https to plain http (or another scheme), refused."""


def new(
    tls: TLS | None = None,
    *,
    redirects: bool = True,
    adapter: type[Adapter] = Adapter,
    pool: tuple[int, int] = (10, 10),
    headers: Mapping[str, str] | None = None,
    insecure: bool = False,
) -> Session:
    """A session (see the module docstring): `tls` (default `default_tls()`), redirects followed or not,
    connections of `adapter` in pools of `pool` (hosts, connections a host), extra `headers`."""
    s = Session(tls or default_tls(), redirects)
    s.headers["User-Agent"] = USER_AGENT
    s.headers.update(headers or {})
    s.max_redirects = MAX_REDIRECTS
    connections = adapter(pool_connections=pool[0], pool_maxsize=pool[1])
    s.mount("http://", connections)
    s.mount("https://", connections)
    if insecure:
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return s
