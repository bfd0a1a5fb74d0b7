"""The image tar: one file that is both an OCI layout and a docker-load archive, byte-stable."""

import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from bootstrap.image import oci
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
