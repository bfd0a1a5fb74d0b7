"""Image signatures in the registry, where podman and skopeo find them: for each signed manifest, an OCI image
manifest under the tag `sha256-<hex of its digest>.sig` in the same repository (the tag scheme cosign uses,
which registries without the referrers API need; containers/image reads it when its registries.d
configuration says `use-sigstore-attachments: true`). Each layer of that manifest is one payload
(`simplesigning.MEDIA_TYPE`), its signature in the layer annotation `simplesigning.ANNOTATION`.

Signing again adds a layer, as cosign does, unless the manifest already holds our payload with a signature
our key verifies: then nothing is put, so pushing the same image with the same key twice leaves the
signature manifest as it was. Signatures by other keys are kept. The signature manifest has no timestamp:
its bytes depend only on the layers' payloads and signatures.
"""

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bootstrap.image.oci import MEDIA_CONFIG, MEDIA_MANIFEST, Blob, canonical_json
from bootstrap.log import log
from bootstrap.registry import manifests, referrers
from bootstrap.registry.blobs import Uploader
from bootstrap.registry.client import Client
from bootstrap.registry.errors import RegistryError
from bootstrap.registry.layout import BlobSource
from bootstrap.registry.manifests import Manifest, checked, mapping
from bootstrap.registry.reference import Reference
from bootstrap.sign import simplesigning
from bootstrap.sign.keys import PublicKey, SigningKey

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
"""Older cosign versions stored their signature manifests with this media type: read, and rewritten as OCI."""


ZERO_TIME = "0001-01-01T00:00:00Z"
"""The time in cosign's signature configs (its image library's zero time): no clock in the bytes."""


def tag_for(digest: str) -> str:
    """`sha256:abc...` -> `sha256-abc....sig`."""
    return referrers.tag_for(digest) + ".sig"


def identity(target: Reference) -> str:
    """The `docker-reference` a signature names: the repository with its registry, no tag (cosign's choice;
    a `matchRepository` identity in the policy accepts it for every tag and digest of that repository)."""
    return f"{target.host}/{target.repository}"


def layer_of(signed: simplesigning.Signed) -> dict[str, Any]:
    blob = Blob(simplesigning.MEDIA_TYPE, signed.payload)
    return blob.descriptor(annotations={simplesigning.ANNOTATION: signed.signature})


def manifest_of(layers: list[dict[str, Any]]) -> tuple[Manifest, Blob]:
    """The signature (or attestation) manifest over these layers and its config, with the fields cosign's
    config has: an OCI image config whose diff_ids are the payloads' digests, as for any image of uncompressed
    layers, and one history entry per layer, every time the zero time; so the same layers give the same
    bytes."""
    config = {
        "architecture": "",
        "config": {},
        "created": ZERO_TIME,
        "history": [{"created": ZERO_TIME} for _ in layers],
        "os": "",
        "rootfs": {"diff_ids": [d["digest"] for d in layers], "type": "layers"},
    }
    config_blob = Blob(MEDIA_CONFIG, canonical_json(config))
    doc = {"schemaVersion": 2, "mediaType": MEDIA_MANIFEST, "config": config_blob.descriptor(), "layers": layers}
    return Manifest(MEDIA_MANIFEST, canonical_json(doc)), config_blob


def existing_layers(client: Client, repository: str, digest: str) -> list[dict[str, Any]]:
    """The layers of the signature manifest already stored for `digest` (none when there is none)."""
    current = manifests.find(client, repository, tag_for(digest))
    if current is None:
        return []
    if current.media_type not in (MEDIA_MANIFEST, DOCKER_MANIFEST):
        raise RegistryError(
            f"{client.host}/{repository}:{tag_for(digest)} holds a {current.media_type}, not a signature manifest",
            f"that tag is reserved for the signatures of {digest}: remove what is there",
        )
    where = f"signature manifest {current.digest}"
    return [checked(d, where) for d in current.json.get("layers") or []]


def signed_by(layer: dict[str, Any], payload: bytes, key: PublicKey) -> bool:
    """Whether a stored layer is `payload` with a signature by `key` (the payload is ours, so its bytes need
    not be fetched: the digest says whether they are the same)."""
    if layer.get("digest") != Blob(simplesigning.MEDIA_TYPE, payload).digest:
        return False
    signature = mapping(layer.get("annotations")).get(simplesigning.ANNOTATION)
    return isinstance(signature, str) and simplesigning.Signed(payload, signature).verified_by(key)


def vouched(client: Client, digest: str, key: PublicKey, *places: Reference) -> bool:
    """Whether the manifest `digest` carries a signature by `key` in one of the repositories `places` name (each
    signature naming its own repository)."""
    for place in places:
        payload = simplesigning.payload(identity(place), digest)
        if any(signed_by(layer, payload, key) for layer in existing_layers(client, place.repository, digest)):
            return True
    return False


@contextmanager
def sources(blobs: list[Blob]) -> Iterator[list[BlobSource]]:
    with tempfile.TemporaryDirectory(prefix="bootstrap-sig-") as tmp:
        out = []
        for n, blob in enumerate(blobs):
            path = Path(tmp) / str(n)
            path.write_bytes(blob.data)
            out.append(BlobSource(blob.digest, len(blob.data), blob.media_type, path, 0))
        yield out


def sign_one(uploader: Uploader, target: Reference, digest: str, key: SigningKey) -> bool:
    """Sign the manifest `digest` of the target's repository; False when its signature by `key` was already
    there."""
    client, repository = uploader.client, uploader.repository
    payload = simplesigning.payload(identity(target), digest)
    layers = existing_layers(client, repository, digest)
    if any(signed_by(layer, payload, key.public) for layer in layers):
        return False
    signed = simplesigning.sign(key, identity(target), digest)
    layers.append(layer_of(signed))
    manifest, config = manifest_of(layers)
    with sources([config, Blob(simplesigning.MEDIA_TYPE, signed.payload)]) as blobs:
        for source in blobs:
            uploader.ensure(source)
    manifests.put(client, repository, tag_for(digest), manifest)
    return True


def sign_all(uploader: Uploader, target: Reference, digests: list[str], key: SigningKey) -> None:
    """Sign each manifest (the images, then the index of a multi-platform push)."""
    added = sum(sign_one(uploader, target, digest, key) for digest in digests)
    log.info(
        f"signed {len(digests)} manifest(s) in {target.host}/{target.repository} with key "
        f"{key.public.key_id()[:16]} ({added} new, {len(digests) - added} already signed)"
    )
