"""How much of a registry's answer is held in memory, and how an answer that says too much is refused.

Registries cap manifests and indexes at 4 MiB; configs, referrers lists, token answers and error bodies are
smaller still. Every answer body is read up to its request's limit (BODY_LIMIT unless the caller asks less, as
a blob read asks for its declared size) and refused, without retrying, past it. Response headers are bounded by
the HTTP library (64 KiB a line, 100 lines); an answer past those bounds is refused the same way.
"""

import os
import urllib.parse
from pathlib import Path

import requests

from bootstrap.host.plainfile import open_plain
from bootstrap.host.retry import Pace, Transient
from bootstrap.numbers import is_decimal
from bootstrap.registry.errors import RegistryError

MiB = 1 << 20
BODY_LIMIT = 4 * MiB
"""The most bytes of one answer held in memory: a manifest, an index, a config, a token answer."""
RECORD_LIMIT = 16 * MiB
"""The most bytes of one record (a lock) read back from a registry."""
ATTACHED_LIMIT = 64 * MiB
"""The most bytes of the records read back for one image, in all (`Budget`)."""
_READ = 64 * 1024


class Budget:
    """What is read back for one image, in all: a registry listing thousands of records (or one large record
    thousands of times over) is refused past ATTACHED_LIMIT, rather than held in memory."""

    def __init__(self, what: str) -> None:
        self.what, self.used, self.limit = what, 0, ATTACHED_LIMIT

    def take(self, data: bytes) -> bytes:
        self.used += len(data)
        if self.used > self.limit:
            raise RegistryError(
                f"{self.what}: the records attached to it are larger than {size_text(self.limit)} in all",
                "the registry lists more than a build attaches: check what was pushed there",
            )
        return data


def size_text(n: int) -> str:
    return f"{n >> 20} MiB" if n >= MiB and n % MiB == 0 else f"{n} bytes"


def where(method: str, url: str, registry: str) -> str:
    """`GET /v2/x/manifests/1 on HOST`, with the registry named when the URL is on another host (its realm)."""
    parts = urllib.parse.urlsplit(url)
    return f"{method} {parts.path} on {parts.netloc}" + ("" if parts.netloc == registry else f" (for {registry})")


def too_large(method: str, url: str, registry: str, limit: int) -> RegistryError:
    return RegistryError(
        f"{where(method, url, registry)}: the answer is larger than {size_text(limit)}",
        "registries answer this in far less: the registry (or a proxy before it) is broken or hostile",
    )


def read_bounded(resp: requests.Response, limit: int, method: str, registry: str, window: float) -> None:
    """Read the body of a streamed answer into `resp.content`, refusing (and dropping the connection) past
    `limit` bytes, whatever Content-Length says. An answer to HEAD has no body: its Content-Length is the size of
    what a GET would give. A body that drips in slower than `retry.Pace` allows over `window` seconds (the read
    timeout, which a byte now and then never lets fire) is given up as transient, as a mirror download is."""
    declared = resp.headers.get("Content-Length", "")
    bodiless = method == "HEAD" or resp.status_code in (204, 304)
    if not bodiless and is_decimal(declared.strip()) and int(declared) > limit:
        resp.close()
        raise too_large(method, resp.url, registry, limit)
    buf = bytearray()
    pace = Pace(window)
    while chunk := resp.raw.read1(_READ, decode_content=True):  # read1: what arrived, so a drip is seen
        buf += chunk
        if len(buf) > limit:
            resp.close()
            raise too_large(method, resp.url, registry, limit)
        stalled = pace.received(len(chunk))
        if stalled:
            resp.close()
            raise Transient(stalled)
    resp._content = bytes(buf)
    resp._content_consumed = True  # type: ignore[attr-defined]


def read_plain(path: Path, limit: int, hint: str) -> bytes:
    """The bytes of the regular file at `path` (`open_plain`), refused before any is read when it is something
    else or larger than `limit`: a layout or output directory may be crafted, and a FIFO there would hang the
    read, a link to /dev/zero never end it."""
    fd = open_plain(path)
    if fd is None:
        raise RegistryError(f"{path} is missing or not a regular file", hint)
    with open(fd, "rb") as f:
        if os.fstat(fd).st_size > limit:
            raise RegistryError(f"{path} is larger than {size_text(limit)}", hint)
        return f.read(limit + 1)[:limit]


def headers_too_large(method: str, url: str, registry: str, what: str) -> RegistryError:
    return RegistryError(
        f"{where(method, url, registry)}: {what}",
        "registries send short headers: the registry (or a proxy before it) is broken or hostile",
    )
