"""Signed archive metadata: fetch InRelease, check its OpenPGP signature, read Release fields and checksums."""

import email.utils
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from debian.deb822 import Release as Deb822Release

from bootstrap.errors import BootstrapError, MirrorError, SignatureError
from bootstrap.host import http
from bootstrap.host.cache import Cache, read_entry, read_state, replace_entry, write_state
from bootstrap.host.openpgp import verify_clearsigned
from bootstrap.log import log

MAX_FUTURE_SKEW = 300
STATE = "state"
"""A slot's state (`bootstrap.host.cache.write_state`): the kept copy's Date, HTTP validators and sha256."""
"""Seconds a Release `Date:` may lie ahead of this machine's clock. apt allows 10 (Acquire::Max-FutureTime);
five minutes, the customary bound for unsynchronised clocks, still refuses a Release dated hours ahead."""


@dataclass(frozen=True)
class IndexFile:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Release:
    """One verified `dists/<suite>/InRelease`."""

    mirror: str
    dist: str
    origin: str
    suite: str
    codename: str
    date: int
    valid_until: int | None
    by_hash: bool
    components: tuple[str, ...]
    files: dict[str, IndexFile]
    inrelease_sha256: str

    def url(self, path: str) -> str:
        return f"{self.mirror}/dists/{self.dist}/{path}"


def _parse_date(value: str, what: str) -> int:
    try:
        return int(email.utils.parsedate_to_datetime(value).timestamp())
    except (TypeError, ValueError) as exc:
        raise SignatureError(f"{what}: unreadable date {value!r}", "the Release file is malformed") from exc


def _strip_unverified(data: bytes) -> bytes:
    """The message body of a clearsigned file, without checking anything (for --insecure)."""
    text = data.decode("utf-8", errors="replace")
    if "-----BEGIN PGP SIGNED MESSAGE-----" not in text:
        return data
    body = text.split("\n\n", 1)[1].split("\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    lines = [line[2:] if line.startswith("- ") else line for line in body.split("\n")]
    return ("\n".join(lines) + "\n").encode()


@dataclass(frozen=True)
class _Slot:
    """The cache of one InRelease URL: the last copy that passed every check, with its Date and HTTP validators.

    A download replaces it only after it passed the checks too (an --insecure one never does), so the slot never
    holds unchecked bytes and its Date is the floor a later copy must reach (no rollback to an older state).
    """

    cache: Cache
    url: str

    @property
    def dir(self) -> Path:
        return self.cache.slot("releases", hashlib.sha256(self.url.encode()).hexdigest()[:32])

    @property
    def body(self) -> Path:
        return self.dir / "InRelease"

    def kept(self) -> tuple[dict[str, Any], bytes] | None:
        """The cached copy (a regular file of at most what a download may be) and its state (its Date, HTTP
        validators and sha256), when the state is proven and names that copy; else None."""
        state = read_state(self.dir / STATE)
        data = read_entry(self.body, http.MAX_UNSIZED) if state else None
        if data is None or hashlib.sha256(data).hexdigest() != state.get("sha256"):
            return None
        return state, data

    def meta(self) -> dict[str, Any]:
        """The kept copy's state, or {}."""
        kept = self.kept()
        return kept[0] if kept is not None else {}

    def checked_date(self) -> int | None:
        """The Date of the cached copy (None for a copy that an older version of bootstrap cached unchecked)."""
        return _date(self.meta())

    def keep(self, fresh: Path, data: bytes, answer: "http.Headers", date: int) -> None:
        """Make a checked download (`data`, in `fresh`) the cached copy, unless another build meanwhile kept a
        newer one."""
        with self.cache.locked(f"release-{self.dir.name}"):
            known = self.checked_date()
            if known is not None and known > date:
                return
            self.dir.mkdir(exist_ok=True)
            replace_entry(fresh, self.body)
            meta = {
                "etag": answer.get("ETag"),
                "last_modified": answer.get("Last-Modified"),
                "date": date,
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            write_state(self.dir / STATE, meta)


def _date(state: dict[str, Any]) -> int | None:
    date = state.get("date")
    return date if isinstance(date, int) else None


@dataclass
class _Fetched:
    data: bytes
    fresh: Path | None = None
    """A new download not yet in the cache (None: the cached copy, or no cache)."""
    answer: "http.Headers | None" = None


def _fetch_inrelease(
    url: str, slot: _Slot | None, kept: tuple[dict[str, Any], bytes] | None, offline: bool
) -> _Fetched:
    """The InRelease bytes: the cached copy (`kept`, as the slot gave it) when the server says 304 Not Modified or
    with --offline, else a fresh download into a temporary file that `_Slot.keep` adopts once it passed the
    checks."""
    if slot is None:
        return _Fetched(http.fetch_bytes(url))
    if offline:
        if kept is not None:
            return _Fetched(kept[1])
        raise BootstrapError(f"--offline: {url} is not in the cache", "run once without --offline to fill the cache")
    headers: dict[str, str] = {}
    if kept is not None and _date(kept[0]) is not None:
        known = kept[0]
        if known.get("etag"):
            headers["If-None-Match"] = known["etag"]
        if known.get("last_modified"):
            headers["If-Modified-Since"] = known["last_modified"]
    fresh = slot.cache.temp("InRelease")
    answer = http.download(url, fresh, headers=headers)
    if answer is None:
        if kept is not None:
            return _Fetched(kept[1])
        answer = http.download(url, fresh)  # a 304 to no conditional request: fetched whole
        assert answer is not None, "no conditional request, no 304"
    return _Fetched(fresh.read_bytes(), fresh, answer)


def _check_suite(rel: Deb822Release, dist: str, url: str) -> None:
    """The signed Suite or Codename must name the suite asked for (as apt checks): a mirror cannot pass one
    suite off as another, whatever directory it serves it from."""
    suite, codename = rel.get("Suite", ""), rel.get("Codename", "")
    if dist not in (suite, codename):
        raise SignatureError(
            f"{url} is signed as suite {suite or '?'!r} (codename {codename or '?'!r}), not {dist!r}",
            f"the mirror serves another suite under dists/{dist}: use another --mirror, or ask for that suite",
        )


def _check_dates(date: int, valid_until: int | None, known: int | None, url: str, check_valid_until: bool) -> None:
    now = time.time()
    if date > now + MAX_FUTURE_SKEW:
        raise SignatureError(
            f"{url} is dated {_show(date)}, {(date - now) / 3600:.1f} h ahead of this machine's clock",
            "set the clock right (timedatectl, NTP); a Release from the future is not trusted",
        )
    if check_valid_until and valid_until is not None and valid_until < now:
        raise SignatureError(
            f"{url} expired on {_show(valid_until)}",
            "the mirror is stale; use a current mirror, or --no-check-valid-until for a snapshot mirror",
        )
    if known is not None and date < known:
        raise SignatureError(
            f"{url} is dated {_show(date)}, older than the {_show(known)} copy already verified (a rollback)",
            "the mirror went back in time (stale or hostile): use another --mirror, or a snapshot mirror URL "
            "for an older archive state",
        )


def _show(stamp: int) -> str:
    return email.utils.formatdate(stamp, usegmt=True)


def fetch(
    mirror: str,
    dist: str,
    keyrings: tuple[Path, ...],
    insecure: bool = False,
    check_valid_until: bool = True,
    cache: Cache | None = None,
    offline: bool = False,
    signers: frozenset[str] = frozenset(),
) -> Release:
    """Fetch and verify `<mirror>/dists/<dist>/InRelease` (revalidating a cached copy when given a cache).

    Verified: the signature, that it is the suite asked for, that its Date is neither in the future nor older
    than the copy verified before (with a cache), and Valid-Until.
    """
    url = f"{mirror}/dists/{dist}/InRelease"
    slot = _Slot(cache, url) if cache is not None else None
    kept = slot.kept() if slot is not None else None
    known = _date(kept[0]) if kept is not None else None
    try:
        got = _fetch_inrelease(url, slot, kept, offline)
    except http.NotFound:
        raise MirrorError(
            f"suite {dist!r} not found at {mirror} (no dists/{dist}/InRelease)",
            "check --suite (stable, testing, unstable or a codename such as bookworm or trixie) and --mirror",
        ) from None
    try:
        if insecure:
            log.warning("WARNING: --insecure: the signature of %s is NOT checked", url)
            text = _strip_unverified(got.data)
        else:
            text = verify_clearsigned(got.data, keyrings, url, signers)
        rel = Deb822Release(text.decode("utf-8", errors="replace"))
        _check_suite(rel, dist, url)
        if "Date" not in rel:
            raise SignatureError(f"{url}: no Date field", "the archive's Release file is malformed")
        date = _parse_date(rel["Date"], url)
        valid_until = _parse_date(rel["Valid-Until"], url) if "Valid-Until" in rel else None
        _check_dates(date, valid_until, known, url, check_valid_until and not insecure)
        files = {f["name"]: IndexFile(f["name"], f["sha256"], int(f["size"])) for f in rel.get("SHA256", [])}
        if not files:
            raise BootstrapError(f"{url} lists no SHA256 checksums", "the archive is too old or malformed")
        if slot is not None and got.fresh is not None and got.answer is not None and not insecure:
            slot.keep(got.fresh, got.data, got.answer, date)
    finally:
        if got.fresh is not None:
            got.fresh.unlink(missing_ok=True)
    return Release(
        mirror=mirror,
        dist=dist,
        origin=rel.get("Origin", ""),
        suite=rel.get("Suite", dist),
        codename=rel.get("Codename", dist),
        date=date,
        valid_until=valid_until,
        by_hash=rel.get("Acquire-By-Hash", "no").lower() == "yes",
        components=tuple(rel.get("Components", "").split()),
        files=files,
        inrelease_sha256=hashlib.sha256(got.data).hexdigest(),
    )
