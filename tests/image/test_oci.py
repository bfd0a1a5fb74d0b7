"""The image tar: one file that is both an OCI layout and a docker-load archive, byte-stable."""

import dataclasses
import errno
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from bootstrap.errors import BootstrapError
from bootstrap.image import compress, oci
from bootstrap.image.layer import pack

EPOCH = 1_700_000_000


def build(tmp_path: Path, name: str = "img.tar", arch: str = "amd64") -> tuple[Path, oci.Image]:
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True, exist_ok=True)
    (tree / "etc/hello").write_text("hello\n")
    layer = pack(tree, EPOCH, tmp_path / f"layer-{arch}.tgz")
    image = oci.make_image(layer, oci.ImageSettings(arch=arch, epoch=EPOCH, env=["PATH=/usr/bin"], created_by="t"))
    out = tmp_path / name
    _, digest = oci.write_archive(out, [image], ["debian:fixture-slim"], EPOCH)
    assert digest == "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest(), "the digest is of the bytes written"
    return out, image


def test_archive_layout_and_docker_manifest(tmp_path: Path) -> None:
    out, image = build(tmp_path)
    with tarfile.open(out) as tar:
        names = tar.getnames()
        read = {n: tar.extractfile(n).read() for n in names if tar.getmember(n).isfile()}  # type: ignore[union-attr]
    assert json.loads(read["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(read["index.json"])
    desc = index["manifests"][0]
    assert desc["digest"] == image.manifest.digest and desc["platform"] == {"architecture": "amd64", "os": "linux"}
    assert desc["annotations"] == {
        "org.opencontainers.image.ref.name": "debian:fixture-slim",
        "io.containerd.image.name": oci.image_name("debian:fixture-slim"),
    }
    docker = json.loads(read["manifest.json"])
    assert docker[0]["RepoTags"] == ["debian:fixture-slim"]
    assert f"blobs/sha256/{image.layer.digest[7:]}" == docker[0]["Layers"][0]
    config = json.loads(read[docker[0]["Config"]])
    assert config["created"] == "2023-11-14T22:13:20Z" and config["config"]["Cmd"] == ["bash"]
    assert config["rootfs"]["diff_ids"] == [image.layer.diff_id]
    for name, data in read.items():
        if name.startswith("blobs/sha256/"):
            import hashlib

            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]


def test_same_inputs_same_archive(tmp_path: Path) -> None:
    a, _ = build(tmp_path, "a.tar")
    b, _ = build(tmp_path, "b.tar")
    assert a.read_bytes() == b.read_bytes()


def test_arm64_carries_variant(tmp_path: Path) -> None:
    _, image = build(tmp_path, arch="arm64")
    config = json.loads(image.config.data)
    assert config["architecture"] == "arm64" and config["variant"] == "v8"
    assert oci.platform("arm64") == {"architecture": "arm64", "os": "linux", "variant": "v8"}


def _registry(name: str) -> str:
    return name.split("/", 1)[0]


@pytest.mark.parametrize(
    ("tag", "path"),
    [("debian:x", "library/debian:x"), ("debian", "library/debian:latest"), ("me/debian:x", "me/debian:x")]
    + [("library/debian:x", "library/debian:x"), ("127.0.0.1:5000/debian:x", ""), ("localhost/d:x", "")],
)
def test_containerds_name_is_the_whole_name_docker_gives(tag: str, path: str) -> None:
    """A short name completed as Docker completes it (its registry, `library/` for one part, `:latest`): Docker's
    containerd image store keeps a loaded image under exactly this name and finds `docker run debian:x` by it. A
    full reference is kept as written. (Which registry completes a short name is the library's knowledge.)"""
    name = oci.image_name(tag)
    if path:
        assert oci.looks_like_host(_registry(name)) and name == f"{_registry(name)}/{path}"
        assert _registry(name) == _registry(oci.image_name("debian:x")), "one registry completes every short name"
    else:
        assert name == tag
    assert oci.tag_annotations(tag) == {"org.opencontainers.image.ref.name": tag, "io.containerd.image.name": name}


@pytest.mark.parametrize("tag", ["Debian:x", "debian:x:y", "", "debian@sha256:" + "a" * 64, "debian:-x"])
def test_a_tag_docker_would_not_take_is_refused(tag: str) -> None:
    with pytest.raises(oci.ImageNameError, match="not an image name|names a digest"):
        oci.image_name(tag)


def test_several_platforms_are_one_named_index(tmp_path: Path) -> None:
    """index.json names one image, the index over the platforms (as `docker save` writes a multi-platform image):
    Docker's containerd image store loads it under the tag; the index is a blob of the tar, and its digest is the
    one returned (a push of the tar gives that index)."""
    images = []
    for arch in ("amd64", "arm64"):
        tree = tmp_path / arch
        (tree / "etc").mkdir(parents=True)
        (tree / "etc/arch").write_text(arch)
        layer = pack(tree, EPOCH, tmp_path / f"layer-{arch}.tgz")
        images.append(oci.make_image(layer, oci.ImageSettings(arch=arch, epoch=EPOCH, created_by="t")))
    out = tmp_path / "multi.tar"
    top, _ = oci.write_archive(out, images, ["debian:multi"], EPOCH)
    with tarfile.open(out) as tar:
        read = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    (entry,) = json.loads(read["index.json"])["manifests"]
    assert entry["mediaType"] == oci.MEDIA_INDEX and entry["digest"] == top.digest and entry["size"] == len(top.data)
    assert entry["annotations"] == oci.tag_annotations("debian:multi")
    nested = json.loads(read["blobs/sha256/" + top.digest[7:]])
    assert [m["digest"] for m in nested["manifests"]] == [i.manifest.digest for i in images]
    assert [m["platform"]["architecture"] for m in nested["manifests"]] == ["amd64", "arm64"]
    assert "annotations" not in nested["manifests"][0], "the image itself names no tag (a push carries it as is)"
    assert [d["RepoTags"] for d in json.loads(read["manifest.json"])] == [["debian:multi"], []]


def _tarfile_archive(out: Path, images: list[oci.Image], tag: str) -> None:
    """The image tar as Python's tarfile writes it (PAX, every member's times the epoch, no owner names), its members
    in the image tar's order: what `write_archive`'s own headers and padding must give byte for byte."""
    _, _, pieces = oci._pieces(images, [tag], EPOCH)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.uname, info.gname = tarfile.DIRTYPE, 0o755, EPOCH, "", ""
            tar.addfile(info)
        index, image_index = oci.layout_index(images, [tag])
        blobs: dict[str, bytes] = {}
        for img in images:
            blobs |= {img.config.digest: img.config.data, img.manifest.digest: img.manifest.data}
            blobs[img.layer.digest] = img.layer.path.read_bytes()
        if image_index is not None:
            blobs[image_index.digest] = image_index.data
        docker = [
            {"Config": f"blobs/sha256/{i.config.digest[7:]}", "RepoTags": [tag] if n == 0 else [],
             "Layers": [f"blobs/sha256/{i.layer.digest[7:]}"]}
            for n, i in enumerate(images)
        ]  # fmt: skip
        members = [(f"blobs/sha256/{d[7:]}", blobs[d]) for d in sorted(blobs)] + [
            ("index.json", index.data),
            ("manifest.json", json.dumps(docker, separators=(",", ":")).encode()),
            ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'),
        ]
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.mode, info.mtime, info.uname, info.gname, info.size = 0o644, EPOCH, "", "", len(data)
            tar.addfile(info, io.BytesIO(data))
    assert sum(len(p) if isinstance(p, bytes) else p.size for p in pieces) == out.stat().st_size


def test_the_archive_is_the_tar_tarfile_writes(tmp_path: Path) -> None:
    """The image tar's headers, padding and end are tarfile's own, for one platform and for several."""
    images = []
    for arch in ("amd64", "arm64"):
        tree = tmp_path / arch
        (tree / "etc").mkdir(parents=True)
        (tree / "etc/arch").write_text(arch * 3000)
        layer = pack(tree, EPOCH, tmp_path / f"layer-{arch}.tgz")
        images.append(oci.make_image(layer, oci.ImageSettings(arch=arch, epoch=EPOCH, created_by="t")))
    for some in (images[:1], images):
        ours, theirs = tmp_path / "ours.tar", tmp_path / "theirs.tar"
        _, digest = oci.write_archive(ours, some, ["debian:x"], EPOCH)
        _tarfile_archive(theirs, some, "debian:x")
        assert ours.read_bytes() == theirs.read_bytes()
        assert digest == "sha256:" + hashlib.sha256(theirs.read_bytes()).hexdigest()


def test_an_archive_hash_begun_before_the_pack_goes_on_only_for_the_image_it_was_begun_for(tmp_path: Path) -> None:
    """A settled build begins the image tar's hash from the image it expects (the kept layer's digests) and packs
    the layer into it as it writes it: the tar's digest is then the sha256 of the tar written. A hash begun for
    another image (another tag, another layer) is not gone on from: the tar is hashed as it is written."""
    tree = tmp_path / "tree"
    (tree / "etc").mkdir(parents=True)
    (tree / "etc/data").write_bytes(hashlib.sha256(b"seed").digest() * (3 << 15))
    members = compress.Members(tmp_path / "gzip", compress.LEVEL, tmp_path / "layers" / ("ab" * 32))
    members.directory.mkdir()
    (tmp_path / "layers").mkdir()
    first = pack(tree, EPOCH, tmp_path / "first.tgz", members=members)
    members.remember(first.diff_id, first.digest, first.size, first.tar_size)
    settings = oci.ImageSettings(arch="amd64", epoch=EPOCH, created_by="t")
    expected = oci.make_image(dataclasses.replace(first, path=tmp_path / "second.tgz"), settings)

    def packed(tag: str, begun_for: oci.Image) -> tuple[bytes, str, oci.Prehash]:
        prehash = oci.Prehash(oci.archive_prefix([begun_for], [tag], EPOCH, first.digest), first.digest)
        kept = compress.Members(tmp_path / "gzip", compress.LEVEL, tmp_path / "layers" / ("ab" * 32))
        layer = pack(tree, EPOCH, tmp_path / "second.tgz", members=kept, again=False, also=prehash.hash)
        out = tmp_path / "image.tar"
        _, digest = oci.write_archive(out, [oci.make_image(layer, settings)], [tag], EPOCH, prehash)
        return out.read_bytes(), digest, prehash

    data, digest, prehash = packed("debian:x", expected)
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest()
    assert prehash.hash.hexdigest() == digest[7:], "gone on from the hash begun before the pack"
    plain = tmp_path / "plain.tar"
    oci.write_archive(plain, [oci.make_image(first, settings)], ["debian:x"], EPOCH)
    assert data == plain.read_bytes()
    other = oci.make_image(dataclasses.replace(expected.layer, size=expected.layer.size + 1), settings)
    data, digest, prehash = packed("debian:x", other)  # the layer's header names another size
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest() and digest[7:] != prehash.hash.hexdigest()
    with pytest.raises(ValueError, match="one pass only"):
        pack(tree, EPOCH, tmp_path / "third.tgz", members=members, also=hashlib.sha256())


def test_a_layer_the_kernel_will_not_copy_is_read_and_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the kernel, a file system or a sandbox refuses to copy between files (a fault this machine cannot
    cause, so the call is made to fail as they do), a settled build's layer is read and written instead: the same
    tar, its digest the sha256 of what was written. Another error of the copy is the build's."""
    out, image = build(tmp_path)
    begun = oci.archive_prefix([image], ["debian:fixture-slim"], EPOCH, image.layer.digest)

    def prehash() -> oci.Prehash:
        started = oci.Prehash(begun, image.layer.digest)
        started.hash.update(image.layer.path.read_bytes())
        return started

    for refused in (errno.ENOSYS, errno.EXDEV, errno.EPERM):

        def copy_file_range(*args: object, code: int = refused) -> int:
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "copy_file_range", copy_file_range)
        _, digest = oci.write_archive(tmp_path / "again.tar", [image], ["debian:fixture-slim"], EPOCH, prehash())
        assert (tmp_path / "again.tar").read_bytes() == out.read_bytes()
        assert digest == "sha256:" + hashlib.sha256(out.read_bytes()).hexdigest()
    monkeypatch.setattr(os, "copy_file_range", lambda *a: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    with pytest.raises(OSError, match="I/O error"):
        oci.write_archive(tmp_path / "again.tar", [image], ["debian:fixture-slim"], EPOCH, prehash())


def test_a_layer_file_changed_after_its_pack_is_not_archived(tmp_path: Path) -> None:
    """The layer's blob is copied exactly as long as the pack said: a file grown or cut since is an error."""
    out, image = build(tmp_path)
    for change in (b"more", b""):
        data = image.layer.path.read_bytes()
        image.layer.path.write_bytes(data + change if change else data[:-1])
        with pytest.raises(BootstrapError, match="not the layer packed"):
            oci.write_archive(tmp_path / "again.tar", [image], ["debian:x"], EPOCH)
        image.layer.path.write_bytes(data)
