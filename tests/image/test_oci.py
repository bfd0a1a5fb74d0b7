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
    assert desc["annotations"] == {"org.opencontainers.image.ref.name": "debian:fixture-slim"}, "no registry is named"
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


@pytest.mark.parametrize(
    ("tag", "containerd"),
    [("debian:x", None), ("me/debian:x", None), ("127.0.0.1:5000/debian:x", True), ("localhost/d:x", True)],
)
def test_only_a_full_reference_becomes_containerds_image_name(tag: str, containerd: bool | None) -> None:
    expected = {"org.opencontainers.image.ref.name": tag} | ({"io.containerd.image.name": tag} if containerd else {})
    assert oci.tag_annotations(tag) == expected
