"""OCI image config, manifest and index, and the one image tar that docker, podman and skopeo all load."""

import errno
import hashlib
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


Piece = bytes | Layer
"""Part of an image tar: bytes as they are, or a layer's blob (its file's bytes)."""

_COPY = 1 << 20


def _header(name: str, epoch: int, size: int | None) -> bytes:
    """A member's header as tarfile's PAX format writes it (`size` None: a directory)."""
    info = tarfile.TarInfo(name)
    info.mtime = epoch
    info.uname = info.gname = ""
    if size is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
    else:
        info.mode, info.size = 0o644, size
    return info.tobuf(tarfile.PAX_FORMAT, tarfile.ENCODING, "surrogateescape")


def _padding(size: int) -> bytes:
    return tarfile.NUL * (-size % tarfile.BLOCKSIZE)


def _pieces(images: Sequence[Image], tags: Sequence[str], epoch: int) -> tuple[Blob, Blob | None, list[Piece]]:
    """The image tar, in order, as tarfile writes it (its headers, each member's bytes padded to a block, two empty
    blocks and the record's padding at the end): index.json's blob, the image index's (None for one platform), the
    pieces."""
    index, image_index = layout_index(images, tags)
    docker_manifest = [
        {
            "Config": f"blobs/sha256/{img.config.digest[7:]}",
            "RepoTags": list(tags) if i == 0 else [],
            "Layers": [f"blobs/sha256/{img.layer.digest[7:]}"],
        }
        for i, img in enumerate(images)
    ]
    blobs: dict[str, Piece] = {}
    for img in images:
        blobs[img.config.digest] = img.config.data
        blobs[img.manifest.digest] = img.manifest.data
        blobs[img.layer.digest] = img.layer
    if image_index is not None:
        blobs[image_index.digest] = image_index.data
    files = [(f"blobs/sha256/{digest[7:]}", blobs[digest]) for digest in sorted(blobs)]
    files += [
        ("index.json", index.data),
        ("manifest.json", json.dumps(docker_manifest, separators=(",", ":")).encode()),
        ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
    ]
    pieces: list[Piece] = [_header("blobs", epoch, None) + _header("blobs/sha256", epoch, None)]
    for name, item in files:
        if isinstance(item, Layer):
            pieces += [_header(name, epoch, item.size), item, _padding(item.size)]
        else:
            pieces.append(_header(name, epoch, len(item)) + item + _padding(len(item)))
    size = sum(p.size if isinstance(p, Layer) else len(p) for p in pieces) + 2 * tarfile.BLOCKSIZE
    pieces.append(tarfile.NUL * (2 * tarfile.BLOCKSIZE + -size % tarfile.RECORDSIZE))
    return index, image_index, pieces


@dataclass
class Prehash:
    """An image tar's sha256 begun before its layer is packed, from the image as the build expects it (its layer
    the one the package set gave before): it takes the bytes the tar holds before that layer's blob (`prefix`),
    then the blob as `bootstrap.image.layer.pack` writes it (`hash` given as its `also`). `write_archive` goes on
    from it only when the image it writes puts those very bytes before that very layer."""

    prefix: bytes
    layer: str
    """The layer's digest."""
    hash: "hashlib._Hash" = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.hash = hashlib.sha256(self.prefix)


def archive_prefix(images: Sequence[Image], tags: Sequence[str], epoch: int, layer: str) -> bytes:
    """The bytes the image tar of `images` holds before the blob of the layer `layer` (a digest)."""
    _, _, pieces = _pieces(images, tags, epoch)
    return _before(pieces, layer) or b""


def _before(pieces: Sequence[Piece], layer: str) -> bytes | None:
    """The bytes before the blob of `layer` among `pieces` (None: it is not there)."""
    done: list[bytes] = []
    for piece in pieces:
        if isinstance(piece, Layer):
            if piece.digest == layer:
                return b"".join(done)
            return None
        done.append(piece)
    return None


def _copy(layer: Layer, out: BinaryIO, hashing: InOrder | None, digest: "hashlib._Hash") -> None:
    """The layer's blob file into `out`, exactly its size (hashed in order in `hashing`'s thread while the next
    part is read; without it, copied by the kernel, or read and written where the kernel will not)."""
    left = layer.size
    with open(layer.path, "rb") as f:
        if hashing is None:
            left -= _kernel_copy(f, out, left)
        while left:
            chunk = f.read(min(_COPY, left))
            if not chunk:
                break
            if hashing is not None:
                hashing.submit(digest.update, chunk)
            out.write(chunk)
            left -= len(chunk)
        if left or f.read(1):
            raise BootstrapError(f"{layer.path.name}: not the layer packed (its size changed)", "build again")


_NO_KERNEL_COPY = frozenset({errno.ENOSYS, errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EINVAL})
"""What a kernel, file system or sandbox that will not copy between two files says (what is left is then read and
written)."""


def _kernel_copy(src: BinaryIO, out: BinaryIO, count: int) -> int:
    """Up to `count` bytes of `src` into `out` at their offsets, copied by the kernel; how many (fewer where it
    will not, or `src` ends)."""
    out.flush()  # the kernel copies at the file's offset: what is buffered goes first
    done = 0
    while done < count:
        try:
            n = os.copy_file_range(src.fileno(), out.fileno(), count - done)
        except OSError as exc:
            if exc.errno in _NO_KERNEL_COPY:
                break
            raise
        if not n:
            break
        done += n
    return done


def write_archive(
    dest: Path, images: Sequence[Image], tags: Sequence[str], epoch: int, prehash: Prehash | None = None
) -> tuple[Blob, str]:
    """An OCI layout tar that also carries Docker's manifest.json; returns the index the build names the image by
    (index.json for one platform, the image index over several: what a push of it gives) and the sha256 of the
    tar written (with `prehash`, gone on from where it stands when it took what this tar holds up to its layer's
    blob; else computed as it is written)."""
    index, image_index, pieces = _pieces(images, tags, epoch)
    taken = prehash is not None and _before(pieces, prehash.layer) == prehash.prefix
    digest = prehash.hash if prehash is not None and taken else hashlib.sha256()
    hashing = InOrder(4)
    try:
        with open(dest, "wb") as out:
            for piece in pieces:
                if isinstance(piece, Layer):
                    _copy(piece, out, None if taken else hashing, digest)
                    taken = False  # what follows the layer is hashed here
                    continue
                if not taken:
                    hashing.submit(digest.update, piece)
                out.write(piece)
        hashing.settle()
    finally:
        hashing.close(cancel=True)
    return image_index or index, "sha256:" + digest.hexdigest()
