"""Push an image layout to a registry: blobs (skipped, mounted or uploaded), manifests, then the index."""

import collections
from pathlib import Path

from tqdm import tqdm

from bootstrap.log import bars_enabled, log
from bootstrap.registry import artifacts, attestations, manifests, signatures
from bootstrap.registry.blobs import Outcome, Uploader
from bootstrap.registry.client import Client
from bootstrap.registry.errors import MissingBlobs, RegistryError
from bootstrap.registry.layout import BlobSource, Layout
from bootstrap.registry.manifests import Manifest
from bootstrap.registry.options import Options
from bootstrap.registry.reference import Reference, parse_reference
from bootstrap.sign import dsse
from bootstrap.sign.gpgsign import GpgSigner
from bootstrap.sign.keys import SigningKey


def same_registry_repository(name: str, target: Reference) -> str:
    """`other/repo` or `<host>/other/repo` (same host as the target) -> `other/repo`."""
    ref = parse_reference(name, default_host=target.host)
    if ref.host != target.host:
        raise RegistryError(
            f"cannot mount from {name}: it is on {ref.host}, not {target.host}",
            "a mount only works between repositories of the same registry",
        )
    return ref.repository


def push(
    layout: Path,
    ref: str,
    options: Options | None = None,
    records: bool = True,
    sign: SigningKey | None = None,
    gpg: GpgSigner | None = None,
) -> str:
    """Push the image in `layout` to `ref`; returns the pushed digest.

    `layout` is an image.tar, an OCI layout directory, or a `bootstrap build` output directory (its image.tar).
    The records of a build output (lock, SBOMs, provenance) are attached to the image as OCI artifacts, unless
    `records` is false; the signed envelopes among them also as cosign attestations (`attestations`). With a
    `sign` key, every pushed manifest (each platform's and the index) is signed (`signatures`); without one,
    nothing about signatures is read or written. With `gpg`, the same manifests get
    GPG simple signatures naming the pushed reference, written to its lookaside directory (`gpgsign`).

    One platform: its manifest goes under the tag. Several: each manifest by digest, then the index under the
    tag. The digest returned is the sha256 of the exact bytes of that top-level manifest or index.
    """
    options = options or Options()
    target = parse_reference(ref)
    lay = Layout(layout)
    top = lay.top()
    head = top.index or top.images[0]
    if target.digest and target.digest != head.digest:
        raise RegistryError(f"{layout} holds {head.digest}, not {target.digest}", "push it by tag, or by its digest")
    attached, epoch = artifacts.records_of(lay, top) if records else ([], 0)
    mount_from = [same_registry_repository(m, target) for m in options.mount_from]
    blobs: dict[str, BlobSource] = {}
    for image in top.images:
        for descriptor in image.blobs():
            blobs.setdefault(descriptor["digest"], lay.blob(descriptor))
    with Client(target.host, options) as client:
        client.need(target.repository, "pull,push")
        for source in mount_from:
            client.need(source, "pull")
        outcomes: collections.Counter[str] = collections.Counter()
        total = sum(b.size for b in blobs.values())
        with tqdm(total=total, unit="B", unit_scale=True, desc="push", disable=not bars_enabled()) as bar:
            uploader = Uploader(client, target.repository, mount_from, bar.update)
            for blob in sorted(blobs.values(), key=lambda b: (b.size, b.digest)):
                outcome = uploader.ensure(blob)
                outcomes[outcome] += 1
                if outcome is not Outcome.UPLOADED:
                    bar.update(blob.size)
        tag = target.tag or ("latest" if target.digest is None else None)
        if top.index is None:
            digest = _put_image(uploader, lay, tag or head.digest, head)
        else:
            for image in top.images:
                _put_image(uploader, lay, image.digest, image)
            digest = manifests.put(client, target.repository, tag or head.digest, top.index)
        artifacts.attach_all(client, target.repository, attached, epoch, uploader)
        signed = [(r.subject.digest, r.path) for r in attached if r.artifact_type == dsse.MEDIA_TYPE]
        attestations.attest_all(uploader, signed)
        digests = [image.digest for image in top.images] + ([digest] if top.index is not None else [])
        if sign is not None:
            signatures.sign_all(uploader, target, digests, sign)
    if gpg is not None:
        identity = f"{target.host}/{target.repository}:{tag or 'latest'}"
        added = gpg.sign_all(target.repository, identity, digests)
        log.info(f"GPG-signed {len(digests)} manifest(s) as {identity} into {gpg.lookaside} ({added} new)")
    log.info(
        f"pushed {target.host}/{target.repository}{':' + tag if tag else ''}@{digest}: "
        f"{len(top.images)} platform(s); blobs: {outcomes[Outcome.UPLOADED]} uploaded, "
        f"{outcomes[Outcome.MOUNTED]} mounted, {outcomes[Outcome.PRESENT]} already there"
    )
    return digest


def _put_image(uploader: Uploader, lay: Layout, reference: str, image: Manifest) -> str:
    """Put an image manifest; when the registry lacks blobs its HEAD answers said it had (a lying cache, or a
    garbage collection in between), upload them without asking, then put it again."""
    try:
        return manifests.put(uploader.client, uploader.repository, reference, image)
    except MissingBlobs as exc:
        log.warning(f"{exc.message}; uploading its blobs again")
        for descriptor in image.blobs():
            uploader.ensure(lay.blob(descriptor), trust_head=False)
        return manifests.put(uploader.client, uploader.repository, reference, image)
