"""Image references on an explicit registry: `host[:port]/repo/name[:tag][@sha256:...]`.

Docker Hub references work as the docker CLI writes them (DOCKER_HUB_REFERENCE_HOSTS below; a one-part name
there is an official image under `library/`), and are sent to Docker Hub's API host. Unlike docker, a name
without a host (`debian:trixie`) is refused, not taken as Docker Hub: a push never goes there by accident.
Where a command names a default registry (the sources of `bootstrap index`), such a name is on that registry.
"""

import ipaddress
import re
from dataclasses import dataclass

from bootstrap.registry.errors import RegistryError

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)(?::[0-9]{1,5})?$")
_HINT = "write it as HOST[:PORT]/REPOSITORY[:TAG], e.g. <registry>:5000/debian:trixie-slim"

# Docker Hub's well-known names. They are protocol constants (what the docker CLI and `docker login` use), not
# mirrors or defaults, and this is the only place in bootstrap that spells them: everything else asks the
# functions below.
DOCKER_HUB = "docker.io"
"""The reference host of Docker Hub images, as docker prints them (`docker.io/library/debian`)."""
DOCKER_HUB_REFERENCE_HOSTS = (DOCKER_HUB, "index.docker.io")
"""Reference hosts the docker CLI reads as Docker Hub."""
DOCKER_HUB_API = "registry-1.docker.io"
"""The host that serves Docker Hub's registry API (/v2/)."""
DOCKER_HUB_LOGIN = "https://index.docker.io/v1/"
"""The server key `docker login` stores Docker Hub credentials under (config.json auths, credential helpers)."""
OFFICIAL_NAMESPACE = "library"
"""Docker Hub's namespace of official images: `docker.io/debian` is `docker.io/library/debian`."""


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


def _looks_like_host(part: str) -> bool:
    return "." in part or ":" in part or part == "localhost" or part.startswith("[")


def looks_like_reference(text: str) -> bool:
    """`host[:port]/repo[:tag]`: a registry reference rather than a local path."""
    first, slash, rest = text.partition("/")
    if not (slash and rest) or first in (".", "..") or not _looks_like_host(first):
        return False
    try:
        parse_reference(text)
    except RegistryError:
        return False
    return True


def parse_reference(text: str, default_host: str | None = None) -> Reference:
    """Parse `host:port/repo/name:tag`; `repo/name:tag` alone is taken on `default_host` when one is given,
    and refused otherwise. Docker Hub's reference hosts become DOCKER_HUB, its one-part names `library/NAME`."""
    rest, _, digest = text.partition("@")
    first, slash, remainder = rest.partition("/")
    if slash and _looks_like_host(first):
        host, path = first, remainder
    elif default_host is not None:
        host, path = default_host, rest
    else:
        raise RegistryError(f"{text!r} names no registry host", _HINT)
    if not HOST.match(host):
        raise RegistryError(f"{text!r}: {host!r} is not a registry host name", _HINT)
    if host.lower() in DOCKER_HUB_REFERENCE_HOSTS:
        host = DOCKER_HUB
    name, tag = path, None
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = path.rsplit(":", 1)
    if not REPOSITORY.match(name):
        raise RegistryError(f"{text!r}: {name!r} is not a valid repository name (lowercase, digits, . _ - /)", _HINT)
    if host == DOCKER_HUB and "/" not in name:
        name = f"{OFFICIAL_NAMESPACE}/{name}"
    if tag is not None and not TAG.match(tag):
        raise RegistryError(f"{text!r}: {tag!r} is not a valid tag", _HINT)
    if digest and not DIGEST.match(digest):
        raise RegistryError(f"{text!r}: {digest!r} is not a sha256 digest", _HINT)
    return Reference(host, name, tag, digest or None)


def is_docker_hub(host: str) -> bool:
    """`host` is one of Docker Hub's names (a reference host, its API host, or its login key)."""
    return host.lower() in (*DOCKER_HUB_REFERENCE_HOSTS, DOCKER_HUB_API, DOCKER_HUB_LOGIN)


def api_host(host: str) -> str:
    """Where to send a registry's API requests: Docker Hub's API host for its names, else `host` itself."""
    return DOCKER_HUB_API if is_docker_hub(host) else host


def credential_key(host: str) -> str:
    """The server name credentials for `host` are kept under: DOCKER_HUB_LOGIN for Docker Hub, else `host`."""
    return DOCKER_HUB_LOGIN if is_docker_hub(host) else host


def login_command(host: str) -> str:
    """The docker command that stores credentials for `host` (Docker Hub is docker login's default)."""
    return "docker login" if is_docker_hub(host) else f"docker login {host}"


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
