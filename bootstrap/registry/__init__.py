"""Push images to OCI distribution registries, and assemble multi-platform indexes there.

    push(Path("dist/debian-slim/image.tar"), "<registry>:5000/debian:trixie-slim", Options(creds="u:p"))
    make_index("<registry>:5000/debian:trixie", ["debian:trixie-amd64", "debian:trixie-arm64"], Options())

Modules: reference (names), options, credentials (--creds, environment, Docker config), tls (CAs), transport
(retries), limits (how much of an answer is read), auth (Basic, Bearer; trusted token realms), client (one
host, errors), layout (image.tar or OCI dir), manifests, blobs (skip, mount, upload), push, index.
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bootstrap.registry.errors import RegistryError, TransientError
    from bootstrap.registry.index import make_index
    from bootstrap.registry.options import DEFAULT_CHUNK, Options, parse_size
    from bootstrap.registry.push import push
    from bootstrap.registry.reference import Reference, looks_like_reference, parse_reference

_HOME = {
    "RegistryError": "errors",
    "TransientError": "errors",
    "make_index": "index",
    "DEFAULT_CHUNK": "options",
    "Options": "options",
    "parse_size": "options",
    "push": "push",
    "Reference": "reference",
    "looks_like_reference": "reference",
    "parse_reference": "reference",
}
"""Where each name lives: a module is imported when one of its names is first used, so that a command that
never talks to a registry (a build without --push) does not load the HTTP and signing stacks at start."""


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'bootstrap.registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"bootstrap.registry.{_HOME[name]}"), name)
    globals()[name] = value
    return value


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
