"""Signature verdicts kept in the cache: a package file that `pkgsig.verify` passed is not given to gpgv again by
the next build while its bytes, the pinned keys and the signers are the same, and for at most LIFETIME (so a
key that expires, which changes no keyring file, is refused a day late at most).

A verdict is a derived file (`bootstrap.host.cache`) bound to the package's sha256, named by it and by a digest
of the keyrings' content and the signers; it holds that digest and the time of the check, and is proven when
read. It is used only for a file taken from the content-addressed store, which `fetch_all` has just hashed
against the repository's metadata. `verify` rebuilds without them, as without any derived file."""

import hashlib
import struct
import time
from collections.abc import Iterable
from pathlib import Path

from bootstrap.host.cache import Cache, read_derived, write_derived

AREA = "verdicts"
LIFETIME = 24 * 3600
"""Seconds a verdict stands."""
_SCHEME = b"bootstrap rpm package signature verdict 1\n"
_TIME = struct.Struct(">Q")


def keys_digest(keyrings: Iterable[Path], signers: Iterable[str]) -> str:
    """What a verdict depends on besides the package: every keyring's bytes and the signers the recipe pins."""
    h = hashlib.sha256(_SCHEME)
    for keyring in keyrings:
        data = keyring.read_bytes()
        h.update(_TIME.pack(len(data)) + data)
    h.update("\n".join(sorted(s.upper() for s in signers)).encode())
    return h.hexdigest()


class Verdicts:
    """The verdicts of one set of keys, in a cache."""

    def __init__(self, cache: Cache, keyrings: Iterable[Path], signers: Iterable[str]) -> None:
        self.cache = cache
        self.keys = keys_digest(keyrings, signers)
        self.area = cache.area(AREA)
        """Made and checked once, not for every package."""

    def _path(self, sha256: str) -> Path:
        return self.area / f"{sha256}.{self.keys[:32]}"

    def _mine(self, sha256: str, path: Path) -> bool:
        return path == self.cache.blob(sha256)

    def passed(self, sha256: str, path: Path, now: float | None = None) -> bool:
        """Whether the file at `path` (the store's blob of `sha256`) passed the check with these keys within
        LIFETIME."""
        if not self._mine(sha256, path):
            return False
        sections = read_derived(self._path(sha256), sha256)
        if sections is None or len(sections) != 2 or sections[0] != self.keys.encode():
            return False
        if len(sections[1]) != _TIME.size:
            return False
        checked = int(_TIME.unpack(sections[1])[0])
        now = time.time() if now is None else now
        return checked <= now < checked + LIFETIME

    def record(self, sha256: str, path: Path) -> None:
        """Note that the file at `path` passed the check now (nothing for a file outside the store)."""
        if self._mine(sha256, path):
            write_derived(self._path(sha256), sha256, [self.keys.encode(), _TIME.pack(int(time.time()))])
