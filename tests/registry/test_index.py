"""make_index() in a real registry: manifests and blob mounts only, platforms from the config blobs."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.image.oci import MEDIA_INDEX
from bootstrap.registry import Options, RegistryError, make_index, push
from bootstrap.registry.manifests import DOCKER_LIST, DOCKER_MANIFEST
from tests.registry.conftest import PASSWORD, USER, Layout, Skopeo, sha256
from tests.registry.servers import Proxy, Registry, TokenServer

pytestmark = pytest.mark.e2e
PLAIN = ("--tls-verify=false",)


def test_index_from_images_in_other_repositories(
    proxy: Proxy, plain_registry: Registry, amd64: Layout, arm64: Layout, repo: str, skopeo: Skopeo,
    opts: Callable[..., Options], tmp_path: Path,
) -> None:  # fmt: skip
    push(amd64.tar, f"{proxy.host}/{repo}-amd64:1", opts())
    push(arm64.tar, f"{proxy.host}/{repo}-arm64:1", opts())
    mark = len(proxy.seen)
    digest = make_index(f"{proxy.host}/{repo}:1", [f"{repo}-amd64:1", f"{proxy.host}/{repo}-arm64:1"], opts())
    seen = proxy.since(mark)

    ref = f"{plain_registry.host}/{repo}:1"
    raw = skopeo.raw(ref, *PLAIN)
    assert sha256(raw) == digest
    index = json.loads(raw)
    assert index["mediaType"] == MEDIA_INDEX
    assert [m["platform"] for m in index["manifests"]] == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    assert [m["digest"] for m in index["manifests"]] == [amd64.digest, arm64.digest]

    assert [s for s in seen if s.upload] == [], "no blob is uploaded"
    assert [s.status for s in seen if "mount" in s.query] == [201] * 4
    blob_gets = [s.path.rsplit("/", 1)[-1] for s in seen if s.method == "GET" and "/blobs/" in s.path]
    assert blob_gets == [amd64.images[0].config.digest, arm64.images[0].config.digest], "only configs are read"
    skopeo.copy(ref, tmp_path / "copy", "--all", "--src-tls-verify=false")


def test_index_from_tags_of_the_target_repository(
    proxy: Proxy, amd64: Layout, arm64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    push(amd64.tar, f"{proxy.host}/{repo}:amd64", opts())
    push(arm64.tar, f"{proxy.host}/{repo}:arm64", opts())
    mark = len(proxy.seen)
    make_index(f"{proxy.host}/{repo}:latest", [f"{repo}:amd64", f"{repo}@{arm64.digest}"], opts())
    seen = proxy.since(mark)
    assert [s for s in seen if "mount" in s.query or s.upload] == []
    assert [s.path.rsplit("/", 1)[-1] for s in seen if s.method == "PUT"] == ["latest"]


def test_index_of_an_index_source_reproduces_it(
    plain_registry: Registry, multi: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    push(multi.tar, f"{plain_registry.host}/{repo}-src:1", opts())
    assert make_index(f"{plain_registry.host}/{repo}:1", [f"{repo}-src:1"], opts()) == multi.index_digest


def test_docker_v2_sources_give_a_manifest_list(
    plain_registry: Registry, amd64: Layout, arm64: Layout, repo: str, skopeo: Skopeo, opts: Callable[..., Options],
    tmp_path: Path,
) -> None:  # fmt: skip
    for layout, arch in ((amd64, "amd64"), (arm64, "arm64")):
        dest = f"docker://{plain_registry.host}/{repo}-{arch}:v2"
        skopeo.run("copy", "--format", "v2s2", "--dest-tls-verify=false", f"oci-archive:{layout.tar}", dest)
        raw = skopeo.raw(f"{plain_registry.host}/{repo}-{arch}:v2", *PLAIN)
        assert json.loads(raw)["mediaType"] == DOCKER_MANIFEST
    ref = f"{plain_registry.host}/{repo}:v2"
    digest = make_index(ref, [f"{repo}-amd64:v2", f"{repo}-arm64:v2"], opts())
    raw = skopeo.raw(ref, *PLAIN)
    assert sha256(raw) == digest
    index = json.loads(raw)
    assert index["mediaType"] == DOCKER_LIST
    assert [m["mediaType"] for m in index["manifests"]] == [DOCKER_MANIFEST, DOCKER_MANIFEST]
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    skopeo.copy(ref, tmp_path / "copy", "--all", "--src-tls-verify=false")


def test_index_with_token_auth(
    token_registry: Registry, token: TokenServer, amd64: Layout, arm64: Layout, repo: str,
    opts: Callable[..., Options],
) -> None:  # fmt: skip
    creds = opts(creds=f"{USER}:{PASSWORD}")
    push(amd64.tar, f"{token_registry.host}/{repo}-a:1", creds)
    push(arm64.tar, f"{token_registry.host}/{repo}-b:1", creds)
    token.requests.clear()
    make_index(f"{token_registry.host}/{repo}:1", [f"{repo}-a:1", f"{repo}-b:1"], creds)
    assert token.requests == [
        (USER, [f"repository:{repo}:pull,push", f"repository:{repo}-a:pull", f"repository:{repo}-b:pull"])
    ]


def test_index_errors(
    plain_registry: Registry, amd64: Layout, multi: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    host = plain_registry.host
    push(amd64.tar, f"{host}/{repo}-a:1", opts())
    push(multi.tar, f"{host}/{repo}-m:1", opts())
    other_amd64 = multi.images[0].manifest.digest
    with pytest.raises(RegistryError, match="are both linux/amd64"):
        make_index(f"{host}/{repo}:1", [f"{repo}-a:1", f"{repo}-m@{other_amd64}"], opts())
    with pytest.raises(RegistryError, match="not on"):
        make_index(f"{host}/{repo}:1", ["127.0.0.2:5000/other:1"], opts())
    with pytest.raises(RegistryError, match="not found") as info:
        make_index(f"{host}/{repo}:1", [f"{repo}-a:missing"], opts())
    assert "\n" not in info.value.message
    # distribution 2.8 answers MANIFEST_UNKNOWN, not NAME_UNKNOWN, for a repository that was never pushed
    with pytest.raises(RegistryError, match="never-pushed:1: not found"):
        make_index(f"{host}/{repo}:1", [f"{repo}-never-pushed:1"], opts())
