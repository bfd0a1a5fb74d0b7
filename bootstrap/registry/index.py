"""Assemble a multi-platform index in a registry from per-platform images already pushed there.

Only manifests travel: each source manifest is read (its platform from its config blob), its blobs are mounted
into the target repository when it lives in another one, it is put into the target by digest, and the index
over all of them goes under the tag. No layer is downloaded.
"""

from collections.abc import Sequence
from typing import Any

from bootstrap.image.oci import MEDIA_INDEX, canonical_json
from bootstrap.log import log
from bootstrap.registry import blobs, manifests, signatures
from bootstrap.registry.blobs import Uploader
from bootstrap.registry.client import Client
from bootstrap.registry.errors import RegistryError
from bootstrap.registry.manifests import DOCKER_LIST, DOCKER_MANIFEST, Manifest
from bootstrap.registry.options import Options
from bootstrap.registry.reference import Reference, parse_reference
from bootstrap.sign.keys import SigningKey


def _mount_blobs(client: Client, manifest: Manifest, source: str, target: str) -> None:
    for descriptor in manifest.blobs():
        digest = descriptor["digest"]
        if blobs.exists(client, target, digest):
            continue
        upload = blobs.mount(client, target, source, digest)
        if upload is not None:
            blobs.abandon(client, upload)
            raise RegistryError(
                f"{client.host} would not mount blob {digest} from {source} into {target}",
                "the registry does not support cross-repository mounts here: push the image to the target "
                "repository first, or name sources in the target repository",
            )


def _entries(client: Client, source: Reference) -> list[tuple[Manifest, dict[str, Any]]]:
    """The image manifests a source names, each with its platform (an index source gives all its images)."""
    top = manifests.get(client, source.repository, source.reference)
    if not top.is_index:
        config = manifests.config(client, source.repository, top.json.get("config"))
        return [(top, manifests.platform_of(config))]
    out = []
    for descriptor in top.children():
        child = manifests.get(client, source.repository, descriptor["digest"])
        if child.is_index:
            raise RegistryError(f"{source} holds a nested index", "name its per-platform images instead")
        platform = descriptor.get("platform")
        if not platform:
            platform = manifests.platform_of(manifests.config(client, source.repository, child.json.get("config")))
        out.append((child, platform))
    return out


def unvouched(client: Client, src: Reference, target: Reference, digest: str, key: SigningKey) -> None:
    """Refuse to sign the image `digest` that the tag `src` names unless `key` signed it already, where it was
    pushed or in the target repository."""
    if not signatures.vouched(client, digest, key.public, src, target):
        raise RegistryError(
            f"{src} is {digest}, which carries no signature by key {key.public.key_id()[:16]}: an image is not "
            "signed on a tag's word",
            f"push it with --sign-key, or name it by digest ({src.host}/{src.repository}@{digest}) to vouch for it",
        )


def _key(platform: dict[str, Any]) -> str:
    return "/".join(str(platform.get(k, "")) for k in ("os", "architecture", "variant")).rstrip("/")


def make_index(
    target_ref: str, source_refs: Sequence[str], options: Options | None = None, sign: SigningKey | None = None
) -> str:
    """Put under `target_ref` an index over the images `source_refs` name; returns the index digest.

    Sources are `host/repo:tag`, `host/repo@sha256:...`, or `repo:tag` on the target's registry. Sources in
    other repositories have their blobs mounted into the target repository (same registry only). With a `sign`
    key, the index and each image manifest in it are signed in the target repository; an image a source names
    by tag only once it carries a signature by that key already (its push's), as a tag is whatever whoever can
    push to it put there last: an image named by digest is the caller's word (`unvouched`).
    """
    options = options or Options()
    if not source_refs:
        raise RegistryError("no source images for the index", "name at least one per-platform image")
    target = parse_reference(target_ref)
    if target.digest:
        raise RegistryError(f"{target_ref}: an index is put under a tag, not a digest", "name the target HOST/REPO:TAG")
    sources = [parse_reference(s, default_host=target.host) for s in source_refs]
    for src in sources:
        if src.host != target.host:
            raise RegistryError(
                f"{src} is on {src.host}, not on {target.host}",
                "an index is assembled within one registry: push every platform's image there first",
            )
    with Client(target.host, options) as client:
        client.need(target.repository, "pull,push")
        for src in sources:
            if src.repository != target.repository:
                client.need(src.repository, "pull")
        descriptors: list[dict[str, Any]] = []
        types: set[str] = set()
        seen: dict[str, str] = {}
        added: set[str] = set()
        for src in sources:
            for manifest, platform in _entries(client, src):
                key = _key(platform)
                if manifest.digest in added:
                    continue
                if key in seen and key != "unknown/unknown":
                    raise RegistryError(f"{seen[key]} and {src} are both {key}", "give one image per platform")
                seen[key] = str(src)
                added.add(manifest.digest)
                if sign is not None and src.digest is None:
                    unvouched(client, src, target, manifest.digest, sign)
                if src.repository != target.repository:
                    _mount_blobs(client, manifest, src.repository, target.repository)
                    manifests.put(client, target.repository, manifest.digest, manifest)
                descriptors.append(manifest.descriptor(platform=platform))
                types.add(manifest.media_type)
                log.debug(f"{src}: {manifest.digest} for {key}")
        media_type = DOCKER_LIST if types == {DOCKER_MANIFEST} else MEDIA_INDEX
        index = Manifest(
            media_type, canonical_json({"schemaVersion": 2, "mediaType": media_type, "manifests": descriptors})
        )
        current = manifests.find(client, target.repository, target.tag or "latest")
        if current is not None and current.digest == index.digest:
            log.info(f"{target}: the index is there already ({index.digest})")
            digest = index.digest
        else:
            digest = manifests.put(client, target.repository, target.tag or "latest", index)
        if sign is not None:
            signed = [d["digest"] for d in descriptors] + [digest]
            signatures.sign_all(Uploader(client, target.repository), target, signed, sign)
        if current is not None and current.digest == index.digest:
            return digest
    platforms = ", ".join(_key(d["platform"]) for d in descriptors)
    log.info(f"indexed {target.host}/{target.repository}:{target.tag or 'latest'}@{digest}: {platforms}")
    return digest
