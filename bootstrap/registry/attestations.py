"""Signed records as cosign attestations: for each image manifest (and the index) the records are attached to,
an OCI image manifest under the tag `sha256-<hex of its digest>.att` in the same repository, each layer one
DSSE envelope (`dsse.MEDIA_TYPE`) with the layer annotations cosign gives an attestation: its in-toto
`predicateType`, and an empty `dev.cosignproject.cosign/signature` (the signature is inside the envelope). A
`org.opencontainers.image.title` annotation names the record file, as on the referrer artifacts.

This is the form `cosign verify-attestation` and tools built on cosign's layout read; `artifacts` writes the
same envelopes as OCI referrers. Attaching again appends only envelopes not there yet (by digest): layers put
by others, cosign's included, are kept, and pushing the same build twice leaves the manifest as it was.
"""

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from bootstrap.host.cache import sha256_file
from bootstrap.image.oci import MEDIA_MANIFEST
from bootstrap.log import log
from bootstrap.registry import manifests, referrers, signatures
from bootstrap.registry.blobs import Uploader
from bootstrap.registry.client import Client
from bootstrap.registry.errors import RegistryError
from bootstrap.registry.limits import Budget
from bootstrap.registry.manifests import checked, mapping
from bootstrap.sign import dsse

SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
PREDICATE_ANNOTATION = "predicateType"
TITLE = "org.opencontainers.image.title"
"""The record file's name, as on the referrer artifacts."""
_STALE = "the output directory was changed after the build: build it again"


def tag_for(digest: str) -> str:
    """`sha256:abc...` -> `sha256-abc....att`."""
    return referrers.tag_for(digest) + ".att"


def predicate_type(envelope: bytes, where: str) -> str:
    """The predicate type of the in-toto Statement an envelope holds (read, not verified: the envelope is the
    build's own, checked by whoever reads it back)."""
    try:
        statement = json.loads(base64.b64decode(json.loads(envelope)["payload"], validate=True))
        kind = statement["predicateType"]
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        kind = None
    if not isinstance(kind, str):
        raise RegistryError(f"{where} is not an envelope of an in-toto Statement", _STALE)
    return kind


def layer_of(envelope: Path) -> dict[str, Any]:
    """The attestation layer of a record's envelope file."""
    annotations = {
        PREDICATE_ANNOTATION: predicate_type(envelope.read_bytes(), str(envelope)),
        SIGNATURE_ANNOTATION: "",
        TITLE: envelope.name,
    }
    digest, size = "sha256:" + sha256_file(envelope), envelope.stat().st_size
    return {"mediaType": dsse.MEDIA_TYPE, "digest": digest, "size": size, "annotations": annotations}


def existing_layers(client: Client, repository: str, digest: str) -> list[dict[str, Any]]:
    """The layers of the attestation manifest already stored for `digest` (none when there is none)."""
    current = manifests.find(client, repository, tag_for(digest))
    if current is None:
        return []
    if current.media_type not in (MEDIA_MANIFEST, signatures.DOCKER_MANIFEST):
        raise RegistryError(
            f"{client.host}/{repository}:{tag_for(digest)} holds a {current.media_type}, not an attestation manifest",
            f"that tag is reserved for the attestations of {digest}: remove what is there",
        )
    where = f"attestation manifest {current.digest}"
    return [checked(d, where) for d in current.json.get("layers") or []]


def attest_one(uploader: Uploader, digest: str, envelopes: list[Path]) -> int:
    """Append these envelope files (whose blobs are in the repository already) to the attestation manifest of
    `digest`; returns how many were new."""
    client, repository = uploader.client, uploader.repository
    layers = existing_layers(client, repository, digest)
    present = {d["digest"] for d in layers}
    new = []
    for envelope in envelopes:
        layer = layer_of(envelope)
        if layer["digest"] not in present:
            present.add(layer["digest"])
            new.append(layer)
    if not new:
        return 0
    manifest, config = signatures.manifest_of(layers + new)
    with signatures.sources([config]) as blobs:
        uploader.ensure(blobs[0])
    manifests.put(client, repository, tag_for(digest), manifest)
    return len(new)


def attest_all(uploader: Uploader, envelopes: list[tuple[str, Path]]) -> None:
    """Attach signed envelopes, each given with the digest of the manifest it is about (each platform's image,
    and the index for the once-per-build ones), as cosign attestations of those manifests."""
    by_subject: dict[str, list[Path]] = {}
    for digest, path in envelopes:
        by_subject.setdefault(digest, []).append(path)
    if not by_subject:
        return
    added = sum(attest_one(uploader, digest, envelopes) for digest, envelopes in by_subject.items())
    log.info(
        f"attached {sum(map(len, by_subject.values()))} signed record(s) as cosign attestations of "
        f"{len(by_subject)} manifest(s) in {uploader.client.host}/{uploader.repository} ({added} new)"
    )


def envelopes(client: Client, repository: str, digest: str, budget: Budget | None = None) -> dict[str, list[bytes]]:
    """The envelopes attested for `digest` that name their record file (the title annotation), by that name; a
    layer listed twice is read once, and all of them within `budget`."""
    budget = budget or Budget(digest)
    out: dict[str, list[bytes]] = {}
    seen = set()
    for layer in existing_layers(client, repository, digest):
        title = mapping(layer.get("annotations")).get(TITLE)
        if layer.get("mediaType") == dsse.MEDIA_TYPE and isinstance(title, str) and layer["digest"] not in seen:
            seen.add(layer["digest"])
            out.setdefault(title, []).append(budget.take(manifests.blob(client, repository, layer)))
    return out
