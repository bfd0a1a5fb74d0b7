"""Records pushed beside the image as OCI artifacts: through the referrers tag on a real docker-registry (TLS,
htpasswd), through the referrers API on a registry that has it, and read back by digest."""

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bootstrap.image.oci import MEDIA_INDEX, MEDIA_MANIFEST
from bootstrap.records import lock as lock_mod
from bootstrap.records import provenance
from bootstrap.registry import Options, RegistryError, push
from bootstrap.registry.artifacts import EMPTY, LOCK_TYPE, SPDX_TYPE, lock_at
from bootstrap.registry.referrers import tag_for
from tests.cli.test_cli import cli
from tests.fixtures.gpg import GpgKey
from tests.fixtures.repo import Repo
from tests.registry.conftest import PASSWORD, USER, Skopeo, TLSRegistry, sha256
from tests.registry.outputs import build_output, sample_lock
from tests.registry.servers import Proxy

pytestmark = pytest.mark.e2e
TYPES = {LOCK_TYPE, SPDX_TYPE, provenance.MEDIA_TYPE}


def _raw(skopeo: Skopeo, tls: TLSRegistry, ref: str) -> dict[str, Any]:
    flags = ("--cert-dir", str(tls.cert_dir), "--creds", f"{USER}:{PASSWORD}")
    return json.loads(skopeo.raw(ref, *flags))  # type: ignore[no-any-return]


def test_records_are_attached_through_the_referrers_tag(
    tls_registry: TLSRegistry, repo: str, skopeo: Skopeo, opts: Callable[..., Options], tmp_path: Path
) -> None:
    out = build_output(tmp_path)
    options = opts(creds=f"{USER}:{PASSWORD}", ca_cert=tls_registry.ca.ca_cert)
    ref = f"{tls_registry.host}/{repo}:fixture-slim"
    assert push(out.directory, ref, options) == out.digest
    listing = _raw(skopeo, tls_registry, f"{tls_registry.host}/{repo}:{tag_for(out.digest)}")
    assert listing["mediaType"] == MEDIA_INDEX
    entries = listing["manifests"]
    assert isinstance(entries, list) and {e["artifactType"] for e in entries} == TYPES
    for entry in entries:
        artifact = _raw(skopeo, tls_registry, f"{tls_registry.host}/{repo}@{entry['digest']}")
        assert artifact["mediaType"] == MEDIA_MANIFEST and artifact["artifactType"] == entry["artifactType"]
        assert artifact["subject"] == out.image.manifest.descriptor()
        assert artifact["config"] == EMPTY.descriptor()
        (layer,) = artifact["layers"]
        name = layer["annotations"]["org.opencontainers.image.title"]
        assert layer["digest"] == sha256((out.directory / name).read_bytes())
        assert entry["annotations"] == artifact["annotations"]
    found = lock_at(ref, "amd64", options)
    assert found is not None and found[0] == out.lock and found[1] == out.digest
    # a second push lists each record once
    push(out.directory, ref, options)
    again = _raw(skopeo, tls_registry, f"{tls_registry.host}/{repo}:{tag_for(out.digest)}")
    assert again == listing


def test_the_image_config_names_its_lock(
    tls_registry: TLSRegistry, repo: str, skopeo: Skopeo, opts: Callable[..., Options], tmp_path: Path
) -> None:
    out = build_output(tmp_path)
    ref = f"{tls_registry.host}/{repo}:1"
    push(out.directory, ref, opts(creds=f"{USER}:{PASSWORD}", ca_cert=tls_registry.ca.ca_cert))
    flags = ("--cert-dir", str(tls_registry.cert_dir), "--creds", f"{USER}:{PASSWORD}")
    config = json.loads(skopeo.run("inspect", "--config", *flags, f"docker://{ref}").stdout)
    assert config["config"]["Labels"][lock_mod.LABEL] == sha256(out.lock.to_json())


def test_referrers_api_is_used_where_the_registry_has_it(
    proxy: Proxy, repo: str, opts: Callable[..., Options], tmp_path: Path
) -> None:
    proxy.referrers_api = True
    out = build_output(tmp_path)
    ref = f"{proxy.host}/{repo}:1"
    push(out.directory, ref, opts())
    assert not [s for s in proxy.seen if s.path.endswith(f"/manifests/{tag_for(out.digest)}")]
    listed = proxy.referrers[(repo, out.digest)]
    assert {d["artifactType"] for d in listed} == TYPES
    mark = len(proxy.seen)
    found = lock_at(ref, "amd64", opts())
    assert found is not None and found[0] == out.lock
    asked = [s for s in proxy.since(mark) if "/referrers/" in s.path]
    assert asked and asked[0].query == {"artifactType": [LOCK_TYPE]}


def test_damaged_records_are_not_attached(
    proxy: Proxy, repo: str, opts: Callable[..., Options], tmp_path: Path
) -> None:
    out = build_output(tmp_path)
    (out.directory / "lock.json").write_bytes(sample_lock(version="9.9").to_json())
    with pytest.raises(RegistryError, match="does not have the digest build.json records"):
        push(out.directory, f"{proxy.host}/{repo}:1", opts())
    assert not [s for s in proxy.seen if s.method == "PUT"]


def test_a_lock_that_is_not_the_images_is_refused(
    proxy: Proxy, repo: str, opts: Callable[..., Options], tmp_path: Path
) -> None:
    out = build_output(tmp_path)
    other = sample_lock(version="2.0").to_json()
    (out.directory / "lock.json").write_bytes(other)
    summary = json.loads((out.directory / "build.json").read_text())
    summary["files"]["lock.json"] = sha256(other)
    (out.directory / "build.json").write_text(json.dumps(summary))
    with pytest.raises(RegistryError, match="is not the lock of image"):
        push(out.directory, f"{proxy.host}/{repo}:1", opts())


def test_check_against_a_registry_reference(
    tls_registry: TLSRegistry, repo: str, tmp_path: Path, archive: tuple[list[str], Callable[[], None]]
) -> None:
    """`check --against REF` reads the lock attached in the registry: no local file, an empty cache."""
    args, add_security_update = archive
    lock_file = tmp_path / "lock.json"
    made = cli("lock", "debian-slim", "-o", str(lock_file), *args, "--cache-dir", str(tmp_path / "lock-cache"))
    assert made.returncode == 0, made.stderr
    out = build_output(tmp_path / "build", lock_mod.read(lock_file))
    ref = f"{tls_registry.host}/{repo}:fixture-slim"
    access = ["--creds", f"{USER}:{PASSWORD}", "--ca-cert", str(tls_registry.ca.ca_cert)]
    pushed = cli("push", str(out.directory), ref, *access)
    assert pushed.returncode == 0, pushed.stderr
    shutil.rmtree(out.directory)
    empty = tmp_path / "empty-cache"
    same = cli("check", "debian-slim", "--against", ref, *args, *access, "--cache-dir", str(empty))
    assert same.returncode == 0, same.stderr
    assert same.stdout.startswith("up to date")
    add_security_update()
    due = cli("check", "debian-slim", "--against", ref, *args, *access, "--cache-dir", str(tmp_path / "c2"))
    assert due.returncode == 10, due.stderr
    assert "~ libbase 2.0 -> 2.1 [security]" in due.stdout
    anonymous = ["--ca-cert", str(tls_registry.ca.ca_cert), "--cache-dir", str(tmp_path / "c3")]
    refused = cli("check", "debian-slim", "--against", ref, *args, *anonymous)
    assert refused.returncode == 1 and "requires authentication" in refused.stderr
    missing = cli("check", "debian-slim", "--against", ref + "-gone", *args, *access)
    assert missing.returncode == 1 and "is not in the registry" in missing.stderr


@pytest.fixture
def archive(tmp_path: Path, gpg_key: GpgKey, serve: Callable[[Path], str]) -> tuple[list[str], Callable[[], None]]:
    """A signed fixture archive for debian-slim, and a way to publish a security update into it."""
    repo = Repo(tmp_path / "repo", gpg_key)
    repo.debian_dists()
    repo.add_package("fixture", "base", "1.0", priority="required", depends="libbase (>= 2)")
    repo.add_package("fixture", "libbase", "2.0")
    repo.add_package("fixture", "apt", "3.0", depends="libbase")
    repo.publish()
    url = serve(repo.root)

    def update() -> None:
        repo.add_package("fixture-security", "libbase", "2.1")
        repo.publish()

    return ["--mirror", url, "--security-mirror", url, "--keyring", str(repo.keyring)], update
