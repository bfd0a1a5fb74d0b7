"""The records of a build (lock, SBOMs, provenance) as OCI artifacts attached to the pushed image.

Each record is an image manifest with an `artifactType`, the empty config, the record as its one layer and
the image's manifest as its `subject` (OCI image spec 1.1), so that `referrers.listing` finds it from the
image's digest. The image config's `bootstrap.lock.sha256` label names the lock that belongs to it: the lock
read back from a registry is the one whose digest the label gives.
"""

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.host.cache import sha256_file
from bootstrap.host.plainfile import open_plain
from bootstrap.image.oci import MEDIA_MANIFEST, Blob, canonical_json, platform, rfc3339
from bootstrap.log import log
from bootstrap.records import lock as lock_mod
from bootstrap.records import outputs
from bootstrap.registry import attestations, manifests, referrers
from bootstrap.registry.blobs import Uploader
from bootstrap.registry.client import Client
from bootstrap.registry.errors import RegistryError
from bootstrap.registry.layout import BlobSource, Layout, Top
from bootstrap.registry.limits import RECORD_LIMIT, Budget, read_plain
from bootstrap.registry.manifests import Manifest, checked, listed, mapping
from bootstrap.registry.options import Options
from bootstrap.registry.reference import Reference, parse_reference

EMPTY = Blob("application/vnd.oci.empty.v1+json", b"{}")
LOCK_TYPE = outputs.LOCK.media_type
SPDX_TYPE = outputs.SPDX.media_type
CYCLONEDX_TYPE = outputs.CYCLONEDX.media_type
ATTACHED_TYPES = frozenset(o.media_type for o in outputs.OUTPUTS if o.attached)
"""The artifact types of the records a push attaches: a referrer of another type is not read."""
TITLE = attestations.TITLE
CREATED = "org.opencontainers.image.created"

ATTACHED = tuple(o for o in outputs.OUTPUTS if o.attached)
"""The record files attached to a pushed image (the outputs table's `attached` rows): a per-architecture one to
its platform's image, a once-per-build one to every image and the index."""


@dataclass(frozen=True)
class Record:
    """One record file of a build, to attach to one image manifest."""

    path: Path
    artifact_type: str
    subject: Manifest

    @property
    def blob(self) -> BlobSource:
        size = self.path.stat().st_size
        return BlobSource("sha256:" + sha256_file(self.path), size, self.artifact_type, self.path, 0)


def blob_descriptor(blob: BlobSource, title: str) -> dict[str, Any]:
    return {"mediaType": blob.media_type, "digest": blob.digest, "size": blob.size, "annotations": {TITLE: title}}


def manifest_for(record: Record, epoch: int) -> Manifest:
    """The artifact manifest of a record: deterministic, so attaching twice puts the same bytes."""
    blob = record.blob
    doc = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "artifactType": record.artifact_type,
        "config": EMPTY.descriptor(),
        "layers": [blob_descriptor(blob, record.path.name)],
        "subject": record.subject.descriptor(),
        "annotations": {CREATED: rfc3339(epoch), TITLE: record.path.name},
    }
    return Manifest(MEDIA_MANIFEST, canonical_json(doc))


def _summary(directory: Path) -> dict[str, Any] | None:
    """build.json, None when there is none (a plain layout) or it is not JSON; refused when it is not a regular
    file or is too large (a FIFO would hang the push)."""
    path = directory / outputs.SUMMARY.name()
    if not os.path.lexists(path):
        return None
    try:
        data = json.loads(read_plain(path, RECORD_LIMIT, _OUTPUT))
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _present(path: Path) -> bool:
    """Whether a record file is there, a regular file; anything else there (a link, a FIFO) is refused rather
    than attached blind or skipped."""
    if not os.path.lexists(path):
        return False
    fd = open_plain(path)
    if fd is None:
        raise RegistryError(f"{path} is not a regular file", _OUTPUT)
    os.close(fd)
    return True


def records_of(layout: Layout, top: Top) -> tuple[list[Record], int]:
    """The record files beside a `bootstrap build` output's image.tar, each with the manifest it describes, and the
    build's epoch. None for a plain layout. Each file must have the digest build.json gives it, and each lock the
    digest its image's config label gives: nothing else is attached."""
    directory = layout.path.parent if layout.path.is_file() else layout.path
    summary = _summary(directory)
    if summary is None:
        return [], 0
    files = mapping(summary.get("files"))
    by_digest = {m.digest: m for m in top.images}
    platforms = listed(summary.get("platforms"))
    multi = len(platforms) > 1
    out: list[Record] = []
    for entry in platforms:
        arch, digest = mapping(entry).get("arch"), mapping(entry).get("manifest_digest")
        subject = by_digest.get(digest) if isinstance(digest, str) else None
        if subject is None or not isinstance(arch, str):
            raise RegistryError(
                f"{directory}/{outputs.SUMMARY.file} names {digest} for {arch}, not in the image", _STALE
            )
        for row in ATTACHED:
            path = directory / row.name(arch, multi)
            if row.per_arch and _present(path):
                out.append(Record(path, row.media_type, subject))
    subjects = [*top.images, *([top.index] if top.index is not None else [])]
    for row in ATTACHED:
        path = directory / row.name()
        if not row.per_arch and _present(path):
            out += [Record(path, row.media_type, s) for s in subjects]
    for record in out:
        if files.get(record.path.name) != record.blob.digest:
            summary_file = outputs.SUMMARY.file
            raise RegistryError(f"{record.path} does not have the digest {summary_file} records for it", _STALE)
        if record.artifact_type == LOCK_TYPE:
            label = _label(layout, record.subject)
            if label is not None and label != record.blob.digest:
                raise RegistryError(f"{record.path} is not the lock of image {record.subject.digest}", _STALE)
    epoch = mapping(summary.get("build")).get("epoch")
    return out, epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else 0


_STALE = "the output directory was changed after the build: build it again"
_OUTPUT = "give the output directory of a build"


def _label(layout: Layout, image: Manifest) -> str | None:
    try:
        config = json.loads(layout.read(checked(image.json.get("config"), f"{layout.path}: {image.digest}")))
    except (ValueError, RecursionError) as exc:
        raise RegistryError(f"{layout.path}: the config of {image.digest} is not JSON ({exc})", _STALE) from None
    value = mapping(mapping(mapping(config).get("config")).get("Labels")).get(lock_mod.LABEL)
    return value if isinstance(value, str) else None


@contextmanager
def _empty_blob() -> Iterator[BlobSource]:
    with tempfile.TemporaryDirectory(prefix="bootstrap-empty-") as tmp:
        path = Path(tmp) / "empty.json"
        path.write_bytes(EMPTY.data)
        yield BlobSource(EMPTY.digest, len(EMPTY.data), EMPTY.media_type, path, 0)


def attach_all(client: Client, repository: str, records: list[Record], epoch: int, uploader: Uploader) -> str:
    """Upload the records and put their artifact manifests; returns how they are found (`referrers API` or the
    referrers tags used)."""
    if not records:
        return ""
    ways: set[str] = set()
    with _empty_blob() as empty:
        uploader.ensure(empty)
        for record in records:
            uploader.ensure(record.blob)
            ways.add(referrers.attach(client, repository, manifest_for(record, epoch)))
    how = "referrers API" if ways == {"api"} else "referrers tag " + ", ".join(sorted(w for w in ways if w != "api"))
    log.info(f"attached {len(records)} record(s) to {client.host}/{repository} ({how})")
    return how


# --- reading back -----------------------------------------------------------------------------------------------


def image_for_arch(client: Client, ref: Reference, arch: str) -> tuple[Manifest, dict[str, Any]] | None:
    """The image manifest REF serves for `arch` (picked from an index), and its config; None when REF is not
    in the registry."""
    top = manifests.find(client, ref.repository, ref.reference)
    if top is None:
        return None
    image = top
    if top.is_index:
        want = platform(arch)
        chosen = [
            d
            for d in top.children()
            if all(mapping(d.get("platform")).get(k) == v for k, v in want.items() if k != "variant")
        ]
        if not chosen:
            raise RegistryError(f"{ref} has no image for {arch}", "pass --arch with an architecture the index holds")
        image = manifests.get(client, ref.repository, chosen[0]["digest"])
    config = manifests.config(client, ref.repository, image.json.get("config"))
    return image, config


def attached(client: Client, ref: Reference, image: Manifest, artifact_type: str) -> list[tuple[Manifest, bytes]]:
    """The records of one type attached to an image: each artifact manifest with its record's bytes."""
    out = []
    budget = Budget(f"{ref}")
    for d in referrers.listing(client, ref.repository, image.digest, (artifact_type,)):
        artifact = manifests.get(client, ref.repository, d["digest"])
        budget.take(artifact.data)
        doc = artifact.json
        layers = listed(doc.get("layers"))
        if mapping(doc.get("subject")).get("digest") != image.digest or not layers:
            continue
        out.append((artifact, budget.take(manifests.blob(client, ref.repository, layers[0]))))
    return out


def read_lock(client: Client, ref: Reference, arch: str) -> tuple[lock_mod.Lock, Manifest] | None:
    """The lock of the image REF serves for `arch`: the attached lock whose digest the image's label names (or,
    for an image without the label, the one lock attached). None when REF is not in the registry."""
    found_image = image_for_arch(client, ref, arch)
    if found_image is None:
        return None
    image, config = found_image
    label = mapping(mapping(config.get("config")).get("Labels")).get(lock_mod.LABEL)
    found = attached(client, ref, image, LOCK_TYPE)
    if isinstance(label, str):
        match = [data for _, data in found if manifests.sha256(data) == label]
        if not match:
            descriptor = {"digest": label, "size": RECORD_LIMIT}
            try:
                match = [manifests.blob(client, ref.repository, descriptor)]
            except RegistryError as exc:
                raise RegistryError(
                    f"{ref}: the lock {label} its image names is not in the registry ({exc.message})",
                    "push the build again with `bootstrap push` (it attaches the records)",
                ) from None
        data = match[0]
    elif len(found) == 1:
        data = found[0][1]
    else:
        raise RegistryError(
            f"{ref}: {'no lock is' if not found else 'several locks are'} attached to {image.digest}",
            "push the image with `bootstrap push` from its build directory, which attaches its lock",
        )
    return lock_mod.parse(data, f"the lock attached to {ref}"), image


@dataclass(frozen=True)
class Found:
    """The records attached to one image of a registry."""

    files: dict[str, list[bytes]]
    """By file name (the title annotation); several under one name when the image was pushed with records of
    several builds, say envelopes signed with two keys."""
    image: str
    """The image's manifest digest."""
    loose: list[bytes]
    """Records found by digest, not by name: the lock the image's label names, when no record found by name is
    that lock (its artifact manifest gone, or only the attestations read)."""


def records_at(ref_text: str, arch: str, options: Options) -> Found | None:
    """Every record attached to the image a reference serves for `arch`: the referrer artifacts, and the
    envelopes of the cosign attestations (`attestations`); None when the reference is not in the registry."""
    ref = parse_reference(ref_text)
    with Client(ref.host, options) as client:
        client.need(ref.repository, "pull")
        found = image_for_arch(client, ref, arch)
        if found is None:
            return None
        image, config = found
        out: dict[str, list[bytes]] = {}
        budget = Budget(ref_text)
        for d in referrers.listing(client, ref.repository, image.digest, ATTACHED_TYPES):
            artifact = manifests.get(client, ref.repository, d["digest"])
            budget.take(artifact.data)
            doc = artifact.json
            title = mapping(doc.get("annotations")).get(TITLE)
            ours = mapping(doc.get("subject")).get("digest") == image.digest
            layers = listed(doc.get("layers"))
            if ours and layers and isinstance(title, str):
                out.setdefault(title, []).append(budget.take(manifests.blob(client, ref.repository, layers[0])))
        for title, copies in attestations.envelopes(client, ref.repository, image.digest, budget).items():
            have = out.setdefault(title, [])
            have += [c for c in copies if c not in have]
        label = mapping(mapping(config.get("config")).get("Labels")).get(lock_mod.LABEL)
        loose = []
        if isinstance(label, str) and all(manifests.sha256(c) != label for copies in out.values() for c in copies):
            try:
                loose.append(manifests.blob(client, ref.repository, {"digest": label, "size": RECORD_LIMIT}))
            except RegistryError as exc:
                log.debug(f"{ref}: the lock {label} its image names is not in the registry ({exc.message})")
    return Found(out, image.digest, loose)


def lock_at(ref_text: str, arch: str, options: Options) -> tuple[lock_mod.Lock, str] | None:
    """The lock of the image at a reference (HOST/REPO:TAG), with the image's digest; None when there is none."""
    ref = parse_reference(ref_text)
    with Client(ref.host, options) as client:
        client.need(ref.repository, "pull")
        found = read_lock(client, ref, arch)
    return None if found is None else (found[0], found[1].digest)
