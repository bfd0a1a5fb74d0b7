"""Push images to OCI distribution registries, and assemble multi-platform indexes there.

    push(Path("dist/debian-slim/image.tar"), "<registry>:5000/debian:trixie-slim", Options(creds="u:p"))
    make_index("<registry>:5000/debian:trixie", ["debian:trixie-amd64", "debian:trixie-arm64"], Options())

Modules: reference (names), options, credentials (--creds, environment, Docker config), tls (CAs), transport
(retries), limits (how much of an answer is read), auth (Basic, Bearer; trusted token realms), client (one
host, errors), layout (image.tar or OCI dir), manifests, blobs (skip, mount, upload), push, index.
"""

from bootstrap.registry.errors import RegistryError, TransientError
from bootstrap.registry.index import make_index
from bootstrap.registry.options import DEFAULT_CHUNK, Options, parse_size
from bootstrap.registry.push import push
from bootstrap.registry.reference import Reference, looks_like_reference, parse_reference

__all__ = [
    "DEFAULT_CHUNK",
    "Options",
    "Reference",
    "RegistryError",
    "TransientError",
    "looks_like_reference",
    "make_index",
    "parse_reference",
    "parse_size",
    "push",
]
