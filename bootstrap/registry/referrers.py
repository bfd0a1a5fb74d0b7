"""Manifests that refer to another one (its `subject`): listed by the referrers API where the registry has it
(OCI distribution 1.1, `GET /v2/<name>/referrers/<digest>`), else kept by clients in an image index under the
referrers tag `<alg>-<hex>`, as the spec's fallback says. A registry that processed a pushed manifest's
subject answers with `OCI-Subject`; without it the pusher appends to the referrers tag itself.
"""

import json
from collections.abc import Collection
from typing import Any

from bootstrap.image.oci import MEDIA_INDEX, canonical_json
from bootstrap.log import log
from bootstrap.registry import manifests
from bootstrap.registry.client import Client
from bootstrap.registry.errors import RegistryError
from bootstrap.registry.manifests import Manifest, checked, listed

SUBJECT_HEADER = "OCI-Subject"


def tag_for(digest: str) -> str:
    """The referrers tag of a digest: `sha256:abc...` -> `sha256-abc...` (algorithm cut to 32, hex to 64)."""
    algo, _, encoded = digest.partition(":")
    clean = "".join(c if c.isalnum() or c in "._-" else "-" for c in f"{algo[:32]}-{encoded[:64]}")
    return clean


def descriptor_of(manifest: Manifest) -> dict[str, Any]:
    """How a referrers list names a manifest: with its artifactType (or config media type) and annotations."""
    doc = manifest.json
    extra: dict[str, Any] = {}
    artifact_type = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
    if artifact_type:
        extra["artifactType"] = artifact_type
    if doc.get("annotations"):
        extra["annotations"] = doc["annotations"]
    return manifest.descriptor(**extra)


def attach(client: Client, repository: str, artifact: Manifest) -> str:
    """Put a manifest that has a `subject` (by digest) and make it findable from the subject: returns `api` when
    the registry keeps the referrers itself, else the referrers tag it was added to."""
    subject = checked(artifact.json.get("subject"), f"artifact {artifact.digest}")["digest"]
    resp = manifests.put_answer(client, repository, artifact.digest, artifact)
    if resp.headers.get(SUBJECT_HEADER):
        return "api"
    tag = tag_for(subject)
    current = manifests.find(client, repository, tag)
    if current is not None and not current.is_index:
        raise RegistryError(
            f"{client.host}/{repository}:{tag} holds a {current.media_type}, not a referrers index",
            "that tag is reserved for the referrers of " + subject + ": remove what is there",
        )
    listed = current.children() if current is not None else []
    if any(d["digest"] == artifact.digest for d in listed):
        return tag
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": [*listed, descriptor_of(artifact)]}
    manifests.put(client, repository, tag, Manifest(MEDIA_INDEX, canonical_json(index)))
    log.debug(f"{repository}:{tag}: now lists {len(listed) + 1} referrer(s) of {subject}")
    return tag


MAX_REFERRERS = 256
"""The most referrers of the types asked for that one image may list: a build attaches a handful, each push
of it with another key a handful more."""


def listing(client: Client, repository: str, digest: str, types: Collection[str]) -> list[dict[str, Any]]:
    """The descriptors of the manifests of `types` (their listed `artifactType`) whose subject is `digest`, each
    once; more than MAX_REFERRERS of them is refused (each is a manifest to read)."""
    artifact_type = next(iter(types)) if len(types) == 1 else None
    params = {"artifactType": artifact_type} if artifact_type else None
    resp = client.request(
        "GET",
        f"/v2/{repository}/referrers/{digest}",
        what=f"listing the referrers of {digest} in {repository}",
        expect=(200, 404),
        params=params,
        headers={"Accept": MEDIA_INDEX},
    )
    found: list[Any]
    if resp.status_code == 200 and resp.headers.get("Content-Type", "").split(";")[0].strip() == MEDIA_INDEX:
        try:
            found = listed(json.loads(resp.content).get("manifests"))
        except (ValueError, AttributeError, RecursionError) as exc:
            raise RegistryError(f"{client.host}: the referrers of {digest} are not an index ({exc})", "") from None
    else:
        index = manifests.find(client, repository, tag_for(digest))
        found = index.children() if index is not None and index.is_index else []
    unique: dict[str, dict[str, Any]] = {}  # one listed twice is read once
    for d in found:
        if isinstance(d, dict):
            unique.setdefault(checked(d, f"referrers of {digest}")["digest"], d)
    wanted = [d for d in unique.values() if d.get("artifactType") in types]
    if len(wanted) > MAX_REFERRERS:
        raise RegistryError(
            f"{client.host}/{repository}: {digest} lists {len(wanted)} referrers of the records' types, more than "
            f"{MAX_REFERRERS}",
            "the registry lists more than builds attach: check what was pushed there",
        )
    return wanted
