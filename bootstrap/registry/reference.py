"""Image references on an explicit registry: `host[:port]/repo/name[:tag][@sha256:...]`.

bootstrap knows no registry by name: every reference names the host its API requests go to, and no host is
implied. Unlike docker, a name without a host (`debian:trixie`) is refused rather than sent to a default
registry, so a push never goes anywhere by accident. A public registry is reached as any other, by the host
that serves its /v2/ API, with the repository's full path (its official images' namespace included). Where a
command names a default registry (the sources of `bootstrap index`), a name without a host is on that registry.
"""

import ipaddress
import re
from dataclasses import dataclass

from bootstrap.image.oci import looks_like_host
from bootstrap.registry.errors import RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$")
_HINT = "write it as HOST[:PORT]/REPOSITORY[:TAG], e.g. <registry>:5000/debian:trixie-slim"


@dataclass(frozen=True)
class Reference:
    host: str
    """`host` or `host:port` (IPv6 in brackets), as docker names registries."""
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest when there is one, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = f"{self.host}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def looks_like_reference(text: str) -> bool:
    """`host[:port]/repo[:tag]`: a registry reference rather than a local path."""
    first, slash, rest = text.partition("/")
    if not (slash and rest) or first in (".", "..") or not looks_like_host(first):
        return False
    try:
        parse_reference(text)
    except RegistryError:
        return False
    return True


def parse_reference(text: str, default_host: str | None = None) -> Reference:
    """Parse `host:port/repo/name:tag`; `repo/name:tag` alone is taken on `default_host` when one is given,
    and refused otherwise."""
    rest, _, digest = text.partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and looks_like_host(first):
        host, path = first, remainder
    elif default_host is not None:
        host, path = default_host, rest
    else:
        raise RegistryError(f"{text!r} names no registry host", _HINT)
    if not HOST.match(host):
        raise RegistryError(f"{text!r}: {host!r} is not a registry host name", _HINT)
    name, tag = path, None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = path.rsplit(":", 1)
    if not REPOSITORY.match(name):
        raise RegistryError(f"{text!r}: {name!r} is not a valid repository name (lowercase, digits, . _ - /)", _HINT)
    if tag is not None and not TAG.match(tag):
        raise RegistryError(f"{text!r}: {tag!r} is not a valid tag", _HINT)
    if digest and not DIGEST.match(digest):
        raise RegistryError(f"{text!r}: {digest!r} is not a sha256 digest", _HINT)
    return Reference(host, name, tag, digest or None)


def login_command(host: str) -> str:
    """The docker command that stores credentials for `host`."""
    return f"docker login {host}"


def hostname(host: str) -> str:
    """`127.0.0.1:5000` -> `127.0.0.1`, `[::1]:5000` -> `::1`."""
    if host.startswith("["):
        return host[1 : host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: where plain HTTP is allowed without --insecure."""
    name = hostname(host)
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
