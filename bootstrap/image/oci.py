"""OCI image config, manifest and index, and the one image tar that docker, podman and skopeo all load."""

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from bootstrap.errors import BootstrapError
from bootstrap.host.arches import GO_ARCH, VARIANT
from bootstrap.host.parallel import InOrder
from bootstrap.image.layer import Layer

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"


def canonical_json(data: Any) -> bytes:
    """Stable bytes for a JSON document: sorted keys, no spaces."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def rfc3339(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def platform(arch: str) -> dict[str, str]:
    """The OCI platform of a Debian architecture name."""
    out = {"architecture": GO_ARCH.get(arch, arch), "os": "linux"}
    if arch in VARIANT:
        out["variant"] = VARIANT[arch]
    return out


@dataclass(frozen=True)
class Blob:
    media_type: str
    data: bytes
    digest: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "digest", "sha256:" + hashlib.sha256(self.data).hexdigest())

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


@dataclass(frozen=True)
class ImageSettings:
    arch: str
    epoch: int
    cmd: Sequence[str] = ("bash",)
    entrypoint: Sequence[str] = ()
    env: Sequence[str] = ()
    labels: dict[str, str] = field(default_factory=dict)
    created_by: str = ""
    user: str = ""
    workdir: str = ""
    exposed_ports: Sequence[str] = ()
    stop_signal: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    """Put on the image's manifest."""


@dataclass(frozen=True)
class Image:
    """One platform's image: config and manifest blobs plus its layer."""

    config: Blob
    manifest: Blob
    layer: Layer
    arch: str


def make_image(layer: Layer, settings: ImageSettings) -> Image:
    config: dict[str, Any] = {
        "architecture": GO_ARCH.get(settings.arch, settings.arch),
        "os": "linux",
        "created": rfc3339(settings.epoch),
        "config": {"Env": list(settings.env), "Cmd": list(settings.cmd)},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        "history": [{"created": rfc3339(settings.epoch), "created_by": settings.created_by}],
    }
    if settings.arch in VARIANT:
        config["variant"] = VARIANT[settings.arch]
    if settings.entrypoint:
        config["config"]["Entrypoint"] = list(settings.entrypoint)
    if settings.labels:
        config["config"]["Labels"] = dict(settings.labels)
    if settings.user:
        config["config"]["User"] = settings.user
    if settings.workdir:
        config["config"]["WorkingDir"] = settings.workdir
    if settings.exposed_ports:
        config["config"]["ExposedPorts"] = {p if "/" in p else f"{p}/tcp": {} for p in settings.exposed_ports}
    if settings.stop_signal:
        config["config"]["StopSignal"] = settings.stop_signal
    config_blob = Blob(MEDIA_CONFIG, canonical_json(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": config_blob.descriptor(),
        "layers": [{"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}],
    }
    if settings.annotations:
        manifest["annotations"] = dict(settings.annotations)
    return Image(config_blob, Blob(MEDIA_MANIFEST, canonical_json(manifest)), layer, settings.arch)


def _add(tar: tarfile.TarFile, name: str, epoch: int, data: bytes | None = None, path: Path | None = None) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = epoch
    info.uname = info.gname = ""
    if data is None and path is None:
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        return
    info.mode = 0o644
    if path is not None:
        with open(path, "rb") as f:
            info.size = os.fstat(f.fileno()).st_size
            tar.addfile(info, f)  # read a block at a time, each block its own bytes (hashed in a thread)
    else:
        assert data is not None
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def looks_like_host(part: str) -> bool:
    """The first path part of an image name names a registry host, as docker tells one: a dot, a port, `localhost`
    or an IPv6 address in brackets."""
    return "." in part or ":" in part or part == "localhost" or part.startswith("[")


class ImageNameError(BootstrapError):
    """A tag that is not an image reference Docker would take."""


def preload() -> None:
    """Load what `image_name` parses with (Docker's reference grammar, compiled as its module loads): a thread can
    do it while the build waits on something else (the sandbox's scripts)."""
    from docker_image import reference  # noqa: F401


def image_name(tag: str) -> str:
    """The whole name Docker gives the image `tag` (containerd's image name, as `docker save` records it): its
    registry when the tag names none, `library/` before a one-part name on that registry, `:latest` without a tag.
    Docker's own reference rules, as docker-image-py ports them (which registry that is, is its knowledge)."""
    from docker_image import reference  # compiles Docker's reference grammar: loaded when an image is named

    try:
        ref = reference.Reference.parse_normalized_named(tag)
    except reference.InvalidReference as exc:
        raise ImageNameError(f"{tag!r} is not an image name ({exc})", _TAG_HINT) from None
    if ref["digest"]:
        raise ImageNameError(f"{tag!r} names a digest, not a tag", _TAG_HINT)
    return f"{ref['name']}:{ref['tag'] or 'latest'}"


_TAG_HINT = "give name:tag in lowercase, as docker tag takes it (e.g. debian:trixie-slim or <registry>/base/debian:1)"


def tag_annotations(tag: str) -> dict[str, str]:
    """The index annotations that name the image `tag`: its OCI reference name as written (what skopeo's and
    umoci's `layout:NAME` match), and the whole name containerd's image store keeps (Docker with that store names
    a loaded image by it verbatim, and looks a short name up by its whole one)."""
    return {"org.opencontainers.image.ref.name": tag, "io.containerd.image.name": image_name(tag)}


def _index(manifests: list[dict[str, Any]]) -> Blob:
    return Blob(MEDIA_INDEX, canonical_json({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": manifests}))


def index_blob(images: Sequence[Image]) -> Blob:
    """The OCI index over per-platform manifests: the image itself when there are several platforms."""
    return _index([img.manifest.descriptor(platform=platform(img.arch)) for img in images])


def layout_index(images: Sequence[Image], tags: Sequence[str]) -> tuple[Blob, Blob | None]:
    """index.json of the image tar, and the image index it names (None for one platform). One platform: its
    manifest, named by the tag. Several: one entry, the image index over them, named by the tag (as `docker save`
    writes a multi-platform image, which Docker's containerd image store then loads under its name); that index
    is the image, its digest the one a registry gives it once pushed."""
    notes = {"annotations": tag_annotations(tags[0])} if tags else {}
    if len(images) == 1:
        return _index([images[0].manifest.descriptor(platform=platform(images[0].arch), **notes)]), None
    image = index_blob(images)
    return _index([image.descriptor(**notes)]), image


class _HashingFile:
    """What tarfile writes, hashed on its way to the file: a large piece in a thread of its own (in order) while
    the next is written (`digest` waits for it)."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self._hash = hashlib.sha256()
        self.size = 0
        self._hasher = InOrder(4)

    def write(self, data: bytes | memoryview) -> int:
        if len(data) >= _LARGE:
            self._hasher.submit(self._hash.update, data)
        else:
            self._hasher.settle()
            self._hash.update(data)
        self.size += len(data)
        return self.out.write(data)

    def tell(self) -> int:
        return self.size

    def digest(self) -> str:
        """The sha256 of all written."""
        self._hasher.settle()
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        """End the thread (what it had still to hash is dropped)."""
        self._hasher.close(cancel=True)


_LARGE = 256 << 10


def write_archive(dest: Path, images: Sequence[Image], tags: Sequence[str], epoch: int) -> tuple[Blob, str]:
    """An OCI layout tar that also carries Docker's manifest.json; returns the index the build names the image by
    (index.json for one platform, the image index over several: what a push of it gives) and the sha256 of the
    tar written."""
    index, image_index = layout_index(images, tags)
    docker_manifest = [
        {
            "Config": f"blobs/sha256/{img.config.digest[7:]}",
            "RepoTags": list(tags) if i == 0 else [],
            "Layers": [f"blobs/sha256/{img.layer.digest[7:]}"],
        }
        for i, img in enumerate(images)
    ]
    blobs: dict[str, tuple[bytes | None, Path | None]] = {}
    for img in images:
        blobs[img.config.digest] = (img.config.data, None)
        blobs[img.manifest.digest] = (img.manifest.data, None)
        blobs[img.layer.digest] = (None, img.layer.path)
    if image_index is not None:
        blobs[image_index.digest] = (image_index.data, None)
    with open(dest, "wb") as out:
        hashing = _HashingFile(out)
        try:
            # 1 MiB copies of the layer (tarfile's 16 KiB cost a call each through the hash): the bytes are the same
            with tarfile.TarFile(fileobj=hashing, mode="w", format=tarfile.PAX_FORMAT, copybufsize=1 << 20) as tar:  # type: ignore[arg-type]
                _add(tar, "blobs", epoch)
                _add(tar, "blobs/sha256", epoch)
                for digest in sorted(blobs):
                    data, path = blobs[digest]
                    _add(tar, f"blobs/sha256/{digest[7:]}", epoch, data, path)
                _add(tar, "index.json", epoch, index.data)
                _add(tar, "manifest.json", epoch, json.dumps(docker_manifest, separators=(",", ":")).encode())
                _add(tar, "oci-layout", epoch, b'{"imageLayoutVersion":"1.0.0"}')
            written = hashing.digest()
        finally:
            hashing.close()
    return image_index or index, written
