"""push() against a real docker-registry, checked with skopeo; wire behaviour seen through a recording proxy."""

import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.image.oci import MEDIA_INDEX, MEDIA_MANIFEST
from bootstrap.registry import Options, RegistryError, push
from tests.fixtures.tars import extract
from tests.registry.conftest import Layout, Skopeo, sha256
from tests.registry.servers import Proxy, Registry, free_port

pytestmark = pytest.mark.e2e
PLAIN = ("--tls-verify=false",)


def test_single_platform_pushes_a_plain_manifest(
    plain_registry: Registry, amd64: Layout, repo: str, skopeo: Skopeo, opts: Callable[..., Options], tmp_path: Path
) -> None:
    ref = f"{plain_registry.host}/{repo}:1"
    digest = push(amd64.tar, ref, opts())
    assert digest == amd64.images[0].manifest.digest
    raw = skopeo.raw(ref, *PLAIN)
    assert sha256(raw) == digest
    assert json.loads(raw)["mediaType"] == MEDIA_MANIFEST
    skopeo.copy(ref, tmp_path / "copy", "--src-tls-verify=false")
    assert (tmp_path / "copy" / amd64.images[0].layer.digest.removeprefix("sha256:")).is_file()


def test_multi_platform_pushes_manifests_then_the_index(
    plain_registry: Registry, multi: Layout, repo: str, skopeo: Skopeo, opts: Callable[..., Options], tmp_path: Path
) -> None:
    ref = f"{plain_registry.host}/{repo}:multi"
    digest = push(multi.tar, ref, opts())
    assert digest == multi.index_digest
    raw = skopeo.raw(ref, *PLAIN)
    assert sha256(raw) == digest
    index = json.loads(raw)
    assert index["mediaType"] == MEDIA_INDEX
    assert [m["platform"]["architecture"] for m in index["manifests"]] == ["amd64", "arm64"]
    for image in multi.images:
        assert sha256(skopeo.raw(f"{plain_registry.host}/{repo}@{image.manifest.digest}", *PLAIN)) == (
            image.manifest.digest
        )
    skopeo.copy(ref, tmp_path / "copy", "--all", "--src-tls-verify=false")


def test_second_push_uploads_no_blob(proxy: Proxy, amd64: Layout, repo: str, opts: Callable[..., Options]) -> None:
    ref = f"{proxy.host}/{repo}:1"
    push(amd64.tar, ref, opts())
    first = proxy.since(0)
    assert sum(1 for s in first if s.upload and s.method == "PUT") == 2
    mark = len(proxy.seen)
    assert push(amd64.tar, ref, opts()) == amd64.digest
    second = proxy.since(mark)
    assert [s for s in second if s.upload] == []
    heads = [s for s in second if s.method == "HEAD"]
    assert len(heads) == 2 and all(s.status == 200 for s in heads)
    assert [s.method for s in second if "/manifests/" in s.path] == ["PUT"]


def test_chunked_upload_continues_at_each_location(
    proxy: Proxy, plain_registry: Registry, amd64: Layout, repo: str, skopeo: Skopeo, opts: Callable[..., Options],
    tmp_path: Path,
) -> None:  # fmt: skip
    ref = f"{proxy.host}/{repo}:chunked"
    assert push(amd64.tar, ref, opts(chunk_size=1 << 20)) == amd64.digest
    patches = [s for s in proxy.seen if s.method == "PATCH"]
    layer = amd64.images[0].layer
    assert len(patches) == -(-layer.size // (1 << 20))
    assert [p.headers["Content-Range"] for p in patches][:2] == ["0-1048575", "1048576-2097151"]
    assert len({p.query["_state"][0] for p in patches}) == len(patches), "each PATCH goes to the newest Location"
    skopeo.copy(f"{plain_registry.host}/{repo}:chunked", tmp_path / "copy", "--src-tls-verify=false")


def test_forced_chunked_upload_of_small_blobs(
    proxy: Proxy, amd64: Layout, repo: str, skopeo: Skopeo, plain_registry: Registry, opts: Callable[..., Options]
) -> None:
    ref = f"{proxy.host}/{repo}:forced"
    assert push(amd64.tar, ref, opts(chunked=True)) == amd64.digest
    patches = [s for s in proxy.seen if s.method == "PATCH"]
    assert len(patches) == 2  # the config and the layer, each in one chunk under the default chunk size
    puts = [s for s in proxy.seen if s.upload and s.method == "PUT"]
    assert all(p.headers.get("Content-Length") == "0" for p in puts)
    assert sha256(skopeo.raw(f"{plain_registry.host}/{repo}:forced", *PLAIN)) == amd64.digest


def test_cross_repository_mount(proxy: Proxy, amd64: Layout, repo: str, opts: Callable[..., Options]) -> None:
    source = f"{repo}-source"
    push(amd64.tar, f"{proxy.host}/{source}:1", opts())
    mark = len(proxy.seen)
    elsewhere = f"{repo}-empty"  # has nothing: its mount attempt is answered 202 and the upload continues
    digest = push(amd64.tar, f"{proxy.host}/{repo}:1", opts(mount_from=(source,)))
    assert digest == amd64.digest
    seen = proxy.since(mark)
    mounts = [s for s in seen if "mount" in s.query]
    assert len(mounts) == 2 and all(s.status == 201 and s.query["from"] == [source] for s in mounts)
    assert [s for s in seen if s.upload] == []

    mark = len(proxy.seen)
    push(amd64.tar, f"{proxy.host}/{repo}-third:1", opts(mount_from=(elsewhere, f"{proxy.host}/{source}")))
    seen = proxy.since(mark)
    statuses = [(s.query["from"][0], s.status) for s in seen if "mount" in s.query]
    assert statuses == [(elsewhere, 202), (source, 201)] * 2
    assert [s for s in seen if s.upload] == []


def test_mount_offer_refused_falls_back_to_upload_in_that_session(
    proxy: Proxy, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    push(amd64.tar, f"{proxy.host}/{repo}:1", opts(mount_from=(f"{repo}-nothing-here",)))
    mounts = [s for s in proxy.seen if "mount" in s.query]
    assert [s.status for s in mounts] == [202, 202]
    assert [s.method for s in proxy.seen if s.upload] == ["PUT", "PUT"], "no second POST: the 202 session is used"


def test_cut_connection_fails_clearly_then_the_next_run_finishes(
    proxy: Proxy, plain_registry: Registry, amd64: Layout, repo: str, skopeo: Skopeo, opts: Callable[..., Options]
) -> None:
    ref = f"{proxy.host}/{repo}:cut"
    proxy.cut_after = 1 << 20
    with pytest.raises(RegistryError) as info:
        push(amd64.tar, ref, opts(retries=1))
    err = info.value
    layer = amd64.images[0].layer
    assert "\n" not in err.message and layer.digest in err.message and "failed after 2 attempts" in err.message
    assert "connection" in err.message and "run the push again" in err.hint
    assert proxy.cuts == 2

    proxy.cut_after = None
    mark = len(proxy.seen)
    assert push(amd64.tar, ref, opts()) == amd64.digest
    seen = proxy.since(mark)
    config = amd64.images[0].config.digest
    assert [s.status for s in seen if s.method == "HEAD" and s.path.endswith(config)] == [200], "config was kept"
    assert len([s for s in seen if s.upload and s.method == "PUT"]) == 1, "only the layer is uploaded again"
    assert sha256(skopeo.raw(f"{plain_registry.host}/{repo}:cut", *PLAIN)) == amd64.digest


def test_5xx_answers_are_retried(proxy: Proxy, amd64: Layout, repo: str, opts: Callable[..., Options]) -> None:
    proxy.fail_next = 3
    assert push(amd64.tar, f"{proxy.host}/{repo}:1", opts(retries=4)) == amd64.digest
    assert [s.status for s in proxy.seen[:4]] == [503, 503, 503, 200]


def test_push_from_a_layout_directory(
    plain_registry: Registry, multi: Layout, repo: str, skopeo: Skopeo, opts: Callable[..., Options], tmp_path: Path
) -> None:
    with tarfile.open(multi.tar) as tar:
        extract(tar, tmp_path / "layout")
    ref = f"{plain_registry.host}/{repo}:dir"
    assert push(tmp_path / "layout", ref, opts()) == multi.index_digest
    assert sha256(skopeo.raw(ref, *PLAIN)) == multi.index_digest


def test_push_by_digest_must_match(plain_registry: Registry, amd64: Layout, opts: Callable[..., Options]) -> None:
    wrong = "sha256:" + "0" * 64
    with pytest.raises(RegistryError, match="holds"):
        push(amd64.tar, f"{plain_registry.host}/test/x@{wrong}", opts())
    assert push(amd64.tar, f"{plain_registry.host}/test/bydigest@{amd64.digest}", opts()) == amd64.digest


def test_damaged_layout_is_refused_before_any_request(
    amd64: Layout, tmp_path: Path, opts: Callable[..., Options]
) -> None:
    with tarfile.open(amd64.tar) as tar:
        extract(tar, tmp_path / "layout")
    manifest = amd64.images[0].manifest.digest.removeprefix("sha256:")
    path = tmp_path / "layout" / "blobs" / "sha256" / manifest
    data = path.read_bytes()
    path.write_bytes(data[:-1] + b" ")  # same size, another digest
    with pytest.raises(RegistryError, match="does not match its digest"):
        push(tmp_path / "layout", f"127.0.0.1:{free_port()}/test/x:1", opts())
    path.write_bytes(b"{}")
    with pytest.raises(RegistryError, match="is 2 bytes, its descriptor says"):
        push(tmp_path / "layout", f"127.0.0.1:{free_port()}/test/x:1", opts())
    shutil.copy(amd64.tar, tmp_path / "image.tar.gz")
    with pytest.raises(RegistryError, match="not an OCI image layout"):
        push(tmp_path, f"127.0.0.1:{free_port()}/test/x:1", opts())


def test_unreachable_and_non_registry_hosts(
    amd64: Layout, tmp_path: Path, serve: Callable[[Path], str], opts: Callable[..., Options]
) -> None:
    with pytest.raises(RegistryError, match="cannot reach the registry") as info:
        push(amd64.tar, f"127.0.0.1:{free_port()}/test/x:1", opts(retries=0))
    assert "connection refused" in info.value.message
    host = serve(tmp_path).removeprefix("http://")
    with pytest.raises(RegistryError, match="is not a container registry"):
        push(amd64.tar, f"{host}/test/x:1", opts())


def test_invalid_references(amd64: Layout, opts: Callable[..., Options]) -> None:
    for bad, words in [
        ("debian:trixie", "names no registry host"),
        ("127.0.0.1:5000/Debian:1", "not a valid repository"),
        ("127.0.0.1:5000/debian:-x", "not a valid tag"),
    ]:
        with pytest.raises(RegistryError, match=words):
            push(amd64.tar, bad, opts())
