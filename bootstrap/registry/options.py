"""What a push or an index assembly can be told: credentials, TLS, chunking, mounts, retries."""

import re
from dataclasses import dataclass
from pathlib import Path

from bootstrap.host.retry import Policy
from bootstrap.registry.errors import RegistryError

MiB = 1 << 20
DEFAULT_CHUNK = 32 * MiB
CERTS_D = Path("/etc/docker/certs.d")


@dataclass(frozen=True)
class Options:
    creds: str | None = None
    """`user:password`; else $BOOTSTRAP_REGISTRY_USER/$BOOTSTRAP_REGISTRY_PASSWORD, else the Docker config."""
    ca_cert: Path | None = None
    """A CA bundle trusted on top of the system CAs and certs.d."""
    insecure: bool = False
    """Do not verify TLS, and fall back to plain HTTP (docker's insecure-registries)."""
    chunk_size: int = DEFAULT_CHUNK
    """Blobs larger than this are uploaded in PATCH requests of this size."""
    chunked: bool = False
    """Upload every blob in chunks, whatever its size."""
    mount_from: tuple[str, ...] = ()
    """Repositories on the same registry that may hold the blobs already: mounted, not uploaded."""
    certs_dir: Path = CERTS_D
    """Docker's per-registry certificates: `<certs_dir>/<host:port>/*.crt` (CAs), `*.cert`+`*.key` (client)."""
    docker_config: Path | None = None
    """Directory of Docker's config.json (default: $DOCKER_CONFIG, then ~/.docker)."""
    token_realms: tuple[str, ...] = ()
    """Hosts (HOST or HOST:PORT) besides the registry's own that may receive its credentials as its token realm
    (also $BOOTSTRAP_REGISTRY_TOKEN_REALMS, comma-separated)."""
    retries: int = 4
    backoff: float = 0.5
    timeout: float = 60.0

    @property
    def policy(self) -> Policy:
        """The retry policy (`bootstrap.host.retry`) with these retries and backoff."""
        return Policy(attempts=self.retries + 1, backoff=self.backoff)


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """`8M`, `512k`, `1GiB`, `1048576` -> bytes (binary units)."""
    m = _SIZE.match(text)
    if not m or int(m.group(1)) <= 0:
        raise RegistryError(f"{text!r} is not a size", "write a byte count such as 8M, 512k or 1G")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]
