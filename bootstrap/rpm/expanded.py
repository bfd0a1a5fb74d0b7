"""Decompressed payloads kept in the cache (its `expanded` area, beside the deb family's decompressed packages),
each named by the sha256 of the uncompressed payload that the package's signed header gives (PAYLOADDIGESTALT,
written by rpm 4.16 and later) and taken only when its bytes hash to that name. A later build of the same
packages reads and hashes a payload instead of decompressing it again: zstd at the level the distributions use
decompresses a few hundred MB/s, sha256 several times that. A payload is checked against that digest whether
it comes from here or from the package, so a header and payload that disagree are refused either way."""

import hashlib
import os
import re
from pathlib import Path

from bootstrap.errors import UnpackError
from bootstrap.host.cache import FILE_MODE, discard, open_derived, write_entry
from bootstrap.log import log
from bootstrap.rpm.header import Layout
from bootstrap.rpm.pkgsig import PAYLOAD_DIGEST_ALGO, PAYLOAD_DIGEST_ALT

SHA256 = 8
"""OpenPGP's number for sha256, as PAYLOADDIGESTALGO gives it."""
_HEX = re.compile(r"[0-9a-f]{64}")
SUFFIX = ".cpio"


def digest_of(layout: Layout) -> str | None:
    """The sha256 the signed header gives for the uncompressed payload, or None (an older rpm wrote none, or
    another algorithm)."""
    algo = layout.main.int32(PAYLOAD_DIGEST_ALGO)
    given = layout.main.strings(PAYLOAD_DIGEST_ALT)
    if algo[:1] != [SHA256] or not given or not _HEX.fullmatch(given[0].lower()):
        return None
    return given[0].lower()


def check(data: bytes, digest: str, what: str) -> None:
    """Refuse a payload that does not inflate to what the signed header says."""
    if hashlib.sha256(data).hexdigest() != digest:
        raise UnpackError(
            f"{what}: its payload does not inflate to the digest its signed header gives",
            "the package is malformed or hostile; do not use this mirror",
        )


def get(area: Path, digest: str, bound: int, check: bool = True) -> bytes | None:
    """The kept payload of `digest`, if it is there (a file of the builder's, as every derived file:
    `open_derived`), at most `bound` bytes, and hashes to `digest` (not hashed without `check`: the caller
    proves it otherwise); one that does not is removed (it is made again)."""
    path = area / (digest + SUFFIX)
    fd = open_derived(path)
    if fd is None:
        return None
    with open(fd, "rb") as f:
        seen = os.fstat(fd)
        data = f.read(bound + 1)
    if len(data) > bound or (check and hashlib.sha256(data).hexdigest() != digest):
        discard(path, "is not the payload its name gives", seen)
        return None
    return data


def put(area: Path, digest: str, data: bytes) -> None:
    """Keep a payload that hashed to `digest` (a failure to write only costs the next build a decompression)."""
    try:
        write_entry(area / (digest + SUFFIX), data, FILE_MODE)
    except OSError as exc:
        log.debug("cache: cannot keep the payload %s: %s", digest, exc)
