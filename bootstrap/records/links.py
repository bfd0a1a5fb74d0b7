"""Where the records point for a description of the build: the base of the provenance's `buildType` and
`builder.id`, and of the SPDX document namespaces and SPDX 3 ids (`$BOOTSTRAP_RECORDS_URL`).

The default is a placeholder under the reserved `.example` domain: set the variable to where this project's
README is published (its section "Records beside every image" describes the build type) so that the links
resolve."""

import os
import urllib.parse
from collections.abc import Mapping

from bootstrap.errors import BootstrapError

ENV = "BOOTSTRAP_RECORDS_URL"
DEFAULT = "https://bootstrap.example/records"


def base_url(environ: Mapping[str, str] = os.environ) -> str:
    """The records' base URL: `$BOOTSTRAP_RECORDS_URL` (http or https, with a host), else `DEFAULT`."""
    given = environ.get(ENV, "").strip()
    if not given:
        return DEFAULT
    parts = urllib.parse.urlsplit(given)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise BootstrapError(
            f"${ENV} is not an http(s) URL without query or fragment: {given!r}",
            f"set {ENV} to where the project's documentation is published, e.g. https://<docs-host>/bootstrap",
        )
    return given.rstrip("/")


def build_type(base: str) -> str:
    """The provenance's `buildType`: how to read its `externalParameters` (the README describes it)."""
    return f"{base}/buildtypes/image/v1"


def builder_id(base: str) -> str:
    return f"{base}/builder"
