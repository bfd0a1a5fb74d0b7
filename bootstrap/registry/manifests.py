"""Manifests and indexes as exact bytes: fetched with the right Accept, put with their own media type."""

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import requests

from bootstrap.host import retry
from bootstrap.image.oci import MEDIA_INDEX, MEDIA_MANIFEST, Blob
from bootstrap.registry.client import Client
from bootstrap.registry.errors import RegistryError
from bootstrap.registry.limits import BODY_LIMIT, RECORD_LIMIT, size_text
from bootstrap.registry.reference import DIGEST

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = (MEDIA_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (MEDIA_INDEX, DOCKER_LIST)
ACCEPT = ", ".join((*INDEX_TYPES, *IMAGE_TYPES))
NONDISTRIBUTABLE = ("foreign", "nondistributable")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def checked(descriptor: object, where: str) -> dict[str, Any]:
    """A descriptor whose digest is `sha256:` and 64 lowercase hex digits and whose size is a byte count.

    Digests become file names in a layout and paths in registry URLs: nothing else may get that far.
    """
    if not isinstance(descriptor, dict):
        raise RegistryError(f"{where}: a descriptor is not a JSON object", _DAMAGED)
    digest, size = descriptor.get("digest"), descriptor.get("size")
    if not isinstance(digest, str) or not DIGEST.match(digest):
        raise RegistryError(f"{where}: {digest!r} is not a sha256 digest (sha256: and 64 lowercase hex)", _DAMAGED)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise RegistryError(f"{where}: descriptor {digest} has no valid size ({size!r})", _DAMAGED)
    return descriptor


_DAMAGED = "the image layout or manifest is damaged or crafted: rebuild it"


def mapping(value: object) -> dict[str, Any]:
    """`value` when it is a JSON object, else an empty one: a member of the wrong type in what a registry or a
    layout gives (`"platform": "linux/amd64"`, `"annotations": ["x"]`) counts as absent, never as a crash."""
    return value if isinstance(value, dict) else {}


def listed(value: object) -> list[Any]:
    """`value` when it is a JSON array, else an empty one (`mapping`, for lists)."""
    return value if isinstance(value, list) else []


@dataclass(frozen=True)
class Manifest(Blob):
    """A manifest or index exactly as stored (`Blob`: its digest is the sha256 of these bytes)."""

    @property
    def json(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.data)
        except (ValueError, RecursionError) as exc:
            raise RegistryError(f"manifest {self.digest} is not JSON ({type(exc).__name__})", _DAMAGED) from None
        if not isinstance(doc, dict):
            raise RegistryError(f"manifest {self.digest} is not a JSON object", "")
        return doc

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def children(self) -> list[dict[str, Any]]:
        """The manifest descriptors of an index (each checked)."""
        return [checked(d, f"index {self.digest}") for d in self._list("manifests")]

    def blobs(self) -> list[dict[str, Any]]:
        """The config and layer descriptors of an image manifest (each checked), without non-distributable layers."""
        where = f"manifest {self.digest}"
        layers = [checked(d, where) for d in self._list("layers")]
        kept = [d for d in layers if not any(n in str(d.get("mediaType", "")) for n in NONDISTRIBUTABLE)]
        return [checked(self.json.get("config"), where), *kept]

    def _list(self, key: str) -> list[Any]:
        items = self.json.get(key) or []
        if not isinstance(items, list):
            raise RegistryError(f"{self.digest}: {key} is not a list", _DAMAGED)
        return items


def media_type_of(data: bytes, fallback: str) -> str:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise RegistryError("a manifest is not JSON", str(exc)) from exc
    declared = doc.get("mediaType") if isinstance(doc, dict) else None
    if isinstance(declared, str) and declared:
        return declared
    if isinstance(doc, dict) and doc.get("schemaVersion") == 1:
        raise RegistryError("schema 1 manifests are not supported", "push the image again with a current client")
    return fallback


def get(client: Client, repository: str, reference: str) -> Manifest:
    """GET a manifest or index by tag or digest (checked against the digest when asked by digest)."""
    found = find(client, repository, reference, missing_ok=False)
    assert found is not None
    return found


def find(client: Client, repository: str, reference: str, missing_ok: bool = True) -> Manifest | None:
    """`get`, or None when the registry has no such tag or manifest (404)."""
    resp = client.request(
        "GET",
        f"/v2/{repository}/manifests/{reference}",
        what=f"reading {client.host}/{repository}:{reference}",
        headers={"Accept": ACCEPT},
        expect=(200, 404) if missing_ok else (200,),
    )
    if resp.status_code == 404:
        return None
    content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
    manifest = Manifest(media_type_of(resp.content, content_type), resp.content)
    if manifest.media_type not in (*IMAGE_TYPES, *INDEX_TYPES):
        raise RegistryError(
            f"{client.host}/{repository}:{reference} is a {manifest.media_type or 'manifest of unknown type'}",
            "only OCI and Docker v2 images and indexes are supported",
        )
    expected = reference if reference.startswith("sha256:") else resp.headers.get("Docker-Content-Digest")
    if expected and expected != manifest.digest:
        raise RegistryError(
            f"{client.host}/{repository}:{reference}: got bytes hashing to {manifest.digest}, expected {expected}",
            "the registry or a proxy changed the manifest",
        )
    return manifest


def put(client: Client, repository: str, reference: str, manifest: Manifest) -> str:
    """PUT the exact bytes under a tag or digest; returns the digest, checked against Docker-Content-Digest."""
    put_answer(client, repository, reference, manifest)
    return manifest.digest


def put_answer(client: Client, repository: str, reference: str, manifest: Manifest) -> requests.Response:
    """`put`, returning the registry's answer (its headers say, for one, whether it processed a `subject`)."""
    resp = client.request(
        "PUT",
        f"/v2/{repository}/manifests/{reference}",
        what=f"push of {'index' if manifest.is_index else 'manifest'} {manifest.digest} to {repository}:{reference}",
        expect=(200, 201),
        headers={"Content-Type": manifest.media_type},
        data=manifest.data,
    )
    answered = resp.headers.get("Docker-Content-Digest")
    if answered and answered != manifest.digest:
        raise RegistryError(
            f"{client.host} stored {repository}:{reference} as {answered}, not {manifest.digest}",
            "the registry rewrote the manifest; it does not keep content as sent",
        )
    return resp


def blob(client: Client, repository: str, descriptor: object, limit: int = RECORD_LIMIT) -> bytes:
    """A small blob's bytes (a config, a record), checked against its digest (fetched again, by `retry.call`,
    when it does not match, as when the connection drops); refused above `limit` bytes, and never read past the
    size its descriptor declares."""
    checked_descriptor = checked(descriptor, f"blob of {repository}")
    digest, size = checked_descriptor["digest"], checked_descriptor["size"]
    if size > limit:
        raise RegistryError(
            f"blob {digest} of {repository} on {client.host} is {size} bytes, more than the {size_text(limit)} "
            "expected",
            "the registry holds something else than bootstrap wrote",
        )

    def once() -> bytes:
        resp = client.request(
            "GET",
            f"/v2/{repository}/blobs/{digest}",
            what=f"reading blob {digest} of {repository}",
            limit=size,
            retry=False,
        )
        if sha256(resp.content) != digest:
            raise retry.Transient(f"blob {digest} of {repository} does not match its digest", mismatch=True)
        return resp.content

    try:
        return retry.call(once, client.options.policy)
    except retry.GaveUp as exc:
        if isinstance(exc.last, RegistryError):
            raise exc.last from None
        raise RegistryError(f"{exc.last.why} ({exc.attempts} attempts)", "the registry is damaged") from None


def config(client: Client, repository: str, descriptor: object) -> dict[str, Any]:
    """An image's config blob, parsed (checked against its digest)."""
    digest = checked(descriptor, f"config of {repository}")["digest"]
    try:
        doc = json.loads(blob(client, repository, descriptor, BODY_LIMIT))
    except (ValueError, RecursionError) as exc:
        raise RegistryError(f"config {digest} of {repository} is not JSON ({exc})", "the registry is damaged") from None
    if not isinstance(doc, dict):
        raise RegistryError(f"config {digest} of {repository} is not a JSON object", "")
    return doc


def platform_of(image_config: dict[str, Any]) -> dict[str, Any]:
    """The OCI platform an image config declares."""
    out: dict[str, Any] = {"architecture": image_config.get("architecture", ""), "os": image_config.get("os", "")}
    for key, name in (("variant", "variant"), ("os.version", "os.version"), ("os.features", "os.features")):
        if image_config.get(key):
            out[name] = image_config[key]
    if not out["architecture"] or not out["os"]:
        raise RegistryError("an image config names no architecture or os", "the image cannot go into an index")
    return out
