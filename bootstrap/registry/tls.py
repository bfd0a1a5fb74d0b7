"""Which certificates a registry connection trusts and presents.

The system CAs, plus `<certs.d>/<host:port>/*.crt` (as docker reads them), plus --ca-cert. The bundle is a
file passed as `verify=` on every request: requests lets $REQUESTS_CA_BUNDLE override Session.verify.
"""

import ssl
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.registry.errors import RegistryError

_SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu
    "/etc/pki/tls/certs/ca-bundle.crt",  # Fedora, RHEL
    "/etc/ssl/cert.pem",  # Alpine, BSDs
)


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
    """`verify` and `cert` for requests, built from the system, certs.d and an explicit CA file."""

    verify: str | bool
    cert: tuple[str, str] | None = None
    extra_cas: list[Path] = field(default_factory=list)
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


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
