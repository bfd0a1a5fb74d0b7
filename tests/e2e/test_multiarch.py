"""An arm64 + amd64 debian-slim built on this amd64 machine (arm64 maintainer scripts through qemu-user),
pushed to a real registry, and run by Docker on each platform."""

import hashlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import bootstrap, ensure_binfmt, image_index, need_tool, run
from tests.registry.servers import Registry

pytestmark = pytest.mark.e2e

Docker = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = Registry(need_tool("docker-registry"), tmp_path_factory.mktemp("multiarch-registry"))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory, registry: Registry, as_root: None) -> tuple[Path, str, str]:
    ensure_binfmt("aarch64")
    out = tmp_path_factory.mktemp("multi") / "out"
    ref = f"{registry.host}/debian:multi"
    proc = bootstrap("debian-slim", "--suite", "trixie", "--arch", "amd64,arm64", "-o", str(out), "-q", "--push", ref)
    pushed = [line for line in proc.stdout.splitlines() if line.startswith(ref + "@")]
    assert len(pushed) == 1, proc.stdout
    return out, ref, pushed[0].split("@", 1)[1]


def test_outputs_per_architecture(multi: tuple[Path, str, str]) -> None:
    out, _, _ = multi
    names = sorted(p.name for p in out.iterdir())
    for arch in ("amd64", "arm64"):
        assert f"rootfs-{arch}.tar.gz" in names and f"lock-{arch}.json" in names and f"packages-{arch}.txt" in names
    platforms = [m["platform"] for m in image_index(out / "image.tar")["manifests"]]
    assert platforms == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    arm_packages = (out / "packages-arm64.txt").read_text()
    assert "libc6\t" in arm_packages and "\tarm64\n" in arm_packages


def test_pushed_index_matches_the_printed_digest(multi: tuple[Path, str, str]) -> None:
    _, ref, digest = multi
    skopeo = need_tool("skopeo")
    raw = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"], capture_output=True, check=True
    ).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    assert json.loads(raw)["mediaType"] == "application/vnd.oci.image.index.v1+json"
    run([skopeo, "copy", "--all", "--src-tls-verify=false", f"docker://{ref}", f"dir:{Path(multi[0]).parent / 'copy'}"])


def _uname(docker: Docker, ref: str, platform: str | None) -> str:
    plat = ["--platform", platform] if platform else []
    docker("pull", *plat, ref)
    return docker("run", "--rm", *plat, ref, "uname", "-m").stdout.strip()


def test_docker_runs_each_platform(multi: tuple[Path, str, str], docker: Docker) -> None:
    _, ref, _ = multi
    docker.created.append(ref)  # type: ignore[attr-defined]
    assert _uname(docker, ref, None) == "x86_64"
    assert _uname(docker, ref, "linux/arm64") == "aarch64"
    out = docker(
        "run", "--rm", "--platform", "linux/arm64", ref, "bash", "-c", "dpkg --print-architecture; dpkg --audit"
    )
    assert out.stdout.split() == ["arm64"]


def test_index_assembled_from_platform_images(multi: tuple[Path, str, str], registry: Registry, docker: Docker) -> None:
    out, ref, _ = multi
    build = json.loads((out / "build.json").read_text())
    sources = [f"{registry.host}/debian@{p['manifest_digest']}" for p in build["platforms"]]
    target = f"{registry.host}/assembled/debian:slim"
    proc = bootstrap("index", target, *sources)
    digest = proc.stdout.strip().rsplit("@", 1)[1]
    skopeo = need_tool("skopeo")
    raw = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", f"docker://{target}"], capture_output=True, check=True
    ).stdout
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    archs = [m["platform"]["architecture"] for m in json.loads(raw)["manifests"]]
    assert archs == ["amd64", "arm64"]
    docker.created.append(target)  # type: ignore[attr-defined]
    assert _uname(docker, target, "linux/arm64") == "aarch64"
