"""Signed records checked against a public key before they are trusted (`verify --key`, `check --key`).

The chain: the provenance's envelope must carry a signature of the key over the provenance's exact bytes; the
provenance names every record it covers (lock, SBOMs) by digest, so each record present must have that digest;
each SBOM's own envelope must be signed by the key too, its Statement holding that SBOM about an image the
provenance names. A missing envelope, another key's signature or a changed byte is a one-line error."""

import hashlib
import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bootstrap.errors import SignatureError
from bootstrap.records import lock as lock_mod
from bootstrap.records import outputs
from bootstrap.sign import dsse
from bootstrap.sign.keys import PublicKey

if TYPE_CHECKING:
    from bootstrap.registry.options import Options

_CHANGED = "the records were changed after they were signed: get them again"


def _json(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        raise SignatureError(f"{where}: not valid JSON", _CHANGED) from None


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _digests(entries: Any) -> dict[str, str]:
    """`name -> sha256:<hex>` of the in-toto resource descriptors (byproducts) or subjects given."""
    out = {}
    for e in entries if isinstance(entries, list) else []:
        if isinstance(e, dict) and isinstance(e.get("digest"), dict) and isinstance(e["digest"].get("sha256"), str):
            out[str(e.get("name"))] = "sha256:" + e["digest"]["sha256"]
    return out


def _covered(provenance: Any) -> dict[str, str]:
    """The records a provenance names (its byproducts), by name: `name -> sha256:<hex>`."""
    details = ((provenance.get("predicate") or {}).get("runDetails") or {}) if isinstance(provenance, dict) else {}
    return _digests(details.get("byproducts"))


def check(
    files: Mapping[str, bytes], key: PublicKey, where: str, complete: bool = True, image: str | None = None
) -> set[str]:
    """Check the signed records among `files` (file name -> bytes) against `key`; returns the names of the records
    found trusted. `complete`: every record the provenance names must be among `files`, and every other record
    checked too (an output directory); else (an image in a registry, which holds only its own platform's, and
    what anyone who can push attached beside them) only those it names are checked and trusted. `image`: the
    digest of the image the records are attached to, which the signed provenance must name."""
    key_hint = "build with --sign-key (or leave out --key)"
    envelope = outputs.PROVENANCE_SIGNED.name()
    if envelope not in files:
        raise SignatureError(f"{where}: no {envelope}: the records are not signed", key_hint)
    payload = dsse.open_envelope(files[envelope], key, f"{where}/{envelope}")
    name = outputs.PROVENANCE.name()
    if name in files and files[name] != payload:
        raise SignatureError(f"{where}/{name} is not the provenance its signed envelope holds", _CHANGED)
    if name not in files and complete:
        raise SignatureError(f"{where}: {name} is missing beside its envelope", _CHANGED)
    provenance = _json(payload, f"{where}/{envelope}")
    covered = _covered(provenance)
    images = set(_digests(provenance.get("subject")).values()) if isinstance(provenance, dict) else set()
    if image is not None and image not in images:
        raise SignatureError(f"{where}: the signed provenance is about other images than {image}", _CHANGED)
    trusted = {name, envelope}
    for record, digest in covered.items():
        if record not in files:
            if complete:
                raise SignatureError(f"{where}: {record} is missing (the signed provenance names it)", _CHANGED)
            continue
        if _digest(files[record]) != digest:
            raise SignatureError(f"{where}/{record} is not the file the signed provenance names", _CHANGED)
        trusted.add(record)
    signed_rows = {o.signs for o in outputs.SIGNED}
    for record in sorted(files):
        row = outputs.row_of(record)
        if row is None or (not complete and record.removesuffix(outputs.ENVELOPE) not in covered):
            continue  # in a registry, whoever can push may attach more: what the provenance covers is checked
        if row in signed_rows and row is not outputs.PROVENANCE:
            _check_sbom(files, record, key, where, images)
            trusted.add(record + outputs.ENVELOPE)
        elif row.signs is not None and record.removesuffix(outputs.ENVELOPE) not in files:
            dsse.open_envelope(files[record], key, f"{where}/{record}")
    return trusted


def place(files: Mapping[str, bytes], loose: Sequence[bytes], key: PublicKey, where: str) -> dict[str, bytes]:
    """`files` and, under the name the provenance signed by `key` gives its digest, each record of `loose` (read
    from a registry by digest, without a name). Without such a provenance, `files` as they are: `check` says
    why."""
    out = dict(files)
    envelope = outputs.PROVENANCE_SIGNED.name()
    if not loose or envelope not in files:
        return out
    try:
        provenance = json.loads(dsse.open_envelope(files[envelope], key, f"{where}/{envelope}"))
    except (SignatureError, ValueError, RecursionError):
        return out
    by_digest = {_digest(data): data for data in loose}
    for name, digest in _covered(provenance).items():
        if name not in out and digest in by_digest:
            out[name] = by_digest[digest]
    return out


def _check_sbom(files: Mapping[str, bytes], record: str, key: PublicKey, where: str, images: set[str]) -> None:
    """An SBOM's envelope is there, signed by `key`, and states this very SBOM about an image of the build."""
    envelope = record + outputs.ENVELOPE
    if envelope not in files:
        raise SignatureError(f"{where}: {record} has no signed envelope ({envelope} is missing)", _CHANGED)
    statement = _json(dsse.open_envelope(files[envelope], key, f"{where}/{envelope}"), f"{where}/{envelope}")
    if not isinstance(statement, dict) or statement.get("predicate") != _json(files[record], f"{where}/{record}"):
        raise SignatureError(f"{where}/{record} is not the SBOM its signed envelope holds", _CHANGED)
    about = set(_digests(statement.get("subject")).values())
    if not about or not about <= images:
        raise SignatureError(f"{where}/{envelope} is about another image than the signed provenance", _CHANGED)


MAX_RECORD = 64 << 20


def read_directory(directory: Path) -> dict[str, bytes]:
    """The record files of an output directory (regular files only, no symbolic link followed), by name."""
    out = {}
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        row = outputs.row_of(entry.name)
        if row is None or row.write is None or row is outputs.SUMMARY:
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue
        with open(fd, "rb") as f:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                out[entry.name] = f.read(MAX_RECORD)
    return out


def trusted_lock(files: Mapping[str, bytes], trusted: set[str], where: str) -> bytes:
    """The one lock among the trusted records."""
    locks = [n for n in sorted(trusted) if n in files and outputs.row_of(n) is outputs.LOCK]
    if len(locks) != 1:
        raise SignatureError(
            f"{where}: {'no lock is' if not locks else 'several locks are'} covered by the signed provenance",
            "check against the output directory or the image of one signed build",
        )
    return files[locks[0]]


def pick(found: Mapping[str, Sequence[bytes]], key: PublicKey) -> dict[str, bytes]:
    """One file of each name among records found in several copies (an image pushed again, its envelopes signed
    anew or with another key): an envelope that `key` opens when there is one; else the first."""

    def opens(name: str, data: bytes) -> bool:
        try:
            dsse.open_envelope(data, key, name)
        except SignatureError:
            return False
        return True

    return {
        name: next((d for d in copies if name.endswith(outputs.ENVELOPE) and opens(name, d)), copies[0])
        for name, copies in found.items()
        if copies
    }


def registry_lock(ref: str, arch: str, options: "Options", key: PublicKey) -> tuple[lock_mod.Lock, str] | None:
    """The lock of the image `ref` serves for `arch` that its records signed by `key` vouch for, with the image's
    digest (`check --key`, a fleet that signs); None when the reference is not in the registry. Records that do
    not vouch for one are a SignatureError."""
    from bootstrap.registry import artifacts  # the network's modules load with the commands that use it

    attached = artifacts.records_at(ref, arch, options)
    if attached is None:
        return None
    where = f"{ref}@{attached.image}"
    files = place(pick(attached.files, key), attached.loose, key, where)
    data = trusted_lock(files, check(files, key, where, complete=False, image=attached.image), where)
    return lock_mod.parse(data, where), attached.image
