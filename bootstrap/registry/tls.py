"""Which certificates a registry connection trusts and presents, docker's way.

The system CAs, plus `<certs.d>/<host:port>/*.crt`, plus --ca-cert; a client certificate from
`<certs.d>/<host:port>/*.cert` and its `.key`. `bootstrap.host.sessions` bundles them and gives them to the
registry's session (where $REQUESTS_CA_BUNDLE cannot replace them).
"""

from pathlib import Path

from bootstrap.host.sessions import TLS, trust
from bootstrap.registry.errors import RegistryError

__all__ = ["TLS", "for_host"]


def for_host(host: str, ca_cert: Path | None, certs_dir: Path, insecure: bool) -> TLS:
    """The TLS settings for `host` (`host:port`), docker's way: certs.d CAs are added to the system ones."""
    host_dir = certs_dir / host
    extra = sorted(host_dir.glob("*.crt")) if host_dir.is_dir() else []
    if ca_cert is not None:
        if not ca_cert.is_file():
            raise RegistryError(f"--ca-cert {ca_cert}: no such file", "give the PEM file of the registry's CA")
        extra.append(ca_cert)
    cert = None
    for client_cert in sorted(host_dir.glob("*.cert")) if host_dir.is_dir() else []:
        key = client_cert.with_suffix(".key")
        if not key.is_file():
            raise RegistryError(
                f"{client_cert} has no matching {key.name}", f"put the client key beside it in {host_dir}"
            )
        cert = (str(client_cert), str(key))
        break
    return trust(extra, cert, insecure)
