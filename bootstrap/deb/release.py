"""Signed archive metadata: fetch InRelease, check its OpenPGP signature, read Release fields and checksums."""

import email.utils
import hashlib
import json
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from debian.deb822 import Release as Deb822Release

from bootstrap import http
from bootstrap.cache import Cache, write_atomic
from bootstrap.errors import BootstrapError, MirrorError, SignatureError
from bootstrap.log import log


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


def verify_clearsigned(data: bytes, keyrings: tuple[Path, ...], what: str) -> bytes:
    """Return the text gpgv vouches for: only the signed part, never what surrounds it."""
    with tempfile.TemporaryDirectory(prefix="bootstrap-gpgv-") as tmp:
        signed = Path(tmp) / "InRelease"
        signed.write_bytes(data)
        out = Path(tmp) / "Release"
        cmd = ["gpgv", "--status-fd", "1", "--output", str(out)]
        for k in keyrings:
            cmd += ["--keyring", str(k)]
        try:
            proc = subprocess.run(
                cmd + [str(signed)], capture_output=True, env={**os.environ, "GNUPGHOME": tmp, "LC_ALL": "C"}
            )
        except FileNotFoundError:
            raise SignatureError("gpgv is not installed", "apt-get install gpgv") from None
        status = proc.stdout.decode(errors="replace")
        if proc.returncode != 0 or "[GNUPG:] VALIDSIG" not in status:
            reason = (
                "not signed"
                if "NODATA" in status or b"BEGIN PGP SIGNED" not in data
                else ("signed by a key not in the keyring" if "NO_PUBKEY" in status else "bad signature")
            )
            raise SignatureError(
                f"{what}: {reason} (keyring: {', '.join(str(k) for k in keyrings)})",
                "check the mirror and --keyring; --insecure skips the check (never for images you ship)",
            )
        return out.read_bytes()


def _strip_unverified(data: bytes) -> bytes:
    """The message body of a clearsigned file, without checking anything (for --insecure)."""
    text = data.decode("utf-8", errors="replace")
    if "-----BEGIN PGP SIGNED MESSAGE-----" not in text:
        return data
    body = text.split("\n\n", 1)[1].split("\n-----BEGIN PGP SIGNATURE-----", 1)[0]
    lines = [line[2:] if line.startswith("- ") else line for line in body.split("\n")]
    return ("\n".join(lines) + "\n").encode()


def _fetch_inrelease(url: str, cache: Cache | None, offline: bool) -> bytes:
    """The InRelease bytes: from the cache when the server says 304 Not Modified, or with --offline."""
    if cache is None:
        return http.fetch_bytes(url)
    slot = cache.area("releases") / hashlib.sha256(url.encode()).hexdigest()[:32]
    body, meta = slot / "InRelease", slot / "meta.json"
    if offline:
        if body.is_file():
            return body.read_bytes()
        raise BootstrapError(f"--offline: {url} is not in the cache", "run once without --offline to fill the cache")
    headers: dict[str, str] = {}
    if body.is_file() and meta.is_file():
        try:
            known = json.loads(meta.read_text())
        except ValueError:
            known = {}
        if known.get("etag"):
            headers["If-None-Match"] = known["etag"]
        if known.get("last_modified"):
            headers["If-Modified-Since"] = known["last_modified"]
    slot.mkdir(parents=True, exist_ok=True)
    answer = http.download(url, body, headers=headers)
    if answer is not None:
        write_atomic(
            meta, json.dumps({"etag": answer.get("ETag"), "last_modified": answer.get("Last-Modified")}).encode()
        )
    return body.read_bytes()


def fetch(
    mirror: str,
    dist: str,
    keyrings: tuple[Path, ...],
    insecure: bool = False,
    check_valid_until: bool = True,
    cache: Cache | None = None,
    offline: bool = False,
) -> Release:
    """Fetch and verify `<mirror>/dists/<dist>/InRelease` (revalidating a cached copy when given a cache)."""
    url = f"{mirror}/dists/{dist}/InRelease"
    try:
        data = _fetch_inrelease(url, cache, offline)
    except http.NotFound:
        raise MirrorError(
            f"suite {dist!r} not found at {mirror} (no dists/{dist}/InRelease)",
            "check --suite (stable, testing, unstable or a codename such as bookworm or trixie) and --mirror",
        ) from None
    if insecure:
        log.warning("WARNING: --insecure: the signature of %s is NOT checked", url)
        text = _strip_unverified(data)
    else:
        text = verify_clearsigned(data, keyrings, url)
    rel = Deb822Release(text.decode("utf-8", errors="replace"))
    if "Date" not in rel:
        raise SignatureError(f"{url}: no Date field", "the archive's Release file is malformed")
    date = _parse_date(rel["Date"], url)
    valid_until = _parse_date(rel["Valid-Until"], url) if "Valid-Until" in rel else None
    if check_valid_until and valid_until is not None and valid_until < time.time() and not insecure:
        raise SignatureError(
            f"{url} expired on {rel['Valid-Until']}",
            "the mirror is stale; use a current mirror, or --no-check-valid-until for a snapshot mirror",
        )
    files = {f["name"]: IndexFile(f["name"], f["sha256"], int(f["size"])) for f in rel.get("SHA256", [])}
    if not files:
        raise BootstrapError(f"{url} lists no SHA256 checksums", "the archive is too old or malformed")
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
        inrelease_sha256=hashlib.sha256(data).hexdigest(),
    )
