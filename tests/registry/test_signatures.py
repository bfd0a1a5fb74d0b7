"""Image signatures written by push --sign-key into a real docker-registry: the payload, the layer, the tag,
re-pushes and other keys, read back over the wire and checked with our own public key (the e2e test in
test_signatures_skopeo.py has skopeo check them)."""

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bootstrap.errors import SignatureError
from bootstrap.image.oci import MEDIA_MANIFEST
from bootstrap.registry import Options, RegistryError, attestations, make_index, manifests, push, signatures
from bootstrap.registry.client import Client
from bootstrap.registry.manifests import Manifest
from bootstrap.sign import keys, simplesigning
from tests.cli.test_cli import cli
from tests.conftest import Serve
from tests.fixtures.gpg import GpgKey
from tests.records.signed_build import make_archive, signing_env
from tests.registry.conftest import Layout
from tests.registry.servers import Registry

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def stored(registry: Registry, repo: str, digest: str, options: Options) -> Manifest | None:
    with Client(registry.host, options) as client:
        client.need(repo, "pull")
        return manifests.find(client, repo, signatures.tag_for(digest))


def layers(registry: Registry, repo: str, digest: str, options: Options) -> list[tuple[dict[str, Any], bytes]]:
    """Each layer of the signature manifest of `digest`, with its payload bytes fetched from the registry."""
    sig = stored(registry, repo, digest, options)
    assert sig is not None, f"no signature manifest for {digest}"
    assert sig.media_type == MEDIA_MANIFEST
    with Client(registry.host, options) as client:
        client.need(repo, "pull")
        config = manifests.config(client, repo, sig.json["config"])
        out = [(d, manifests.blob(client, repo, d)) for d in sig.json["layers"]]
    assert config["rootfs"]["diff_ids"] == [d["digest"] for d, _ in out]
    return out


def check_signed(registry: Registry, repo: str, digest: str, key: keys.PublicKey, options: Options) -> None:
    found = layers(registry, repo, digest, options)
    ours = [(d, p) for d, p in found if key.verifies(p, base64.b64decode(d["annotations"][simplesigning.ANNOTATION]))]
    assert len(ours) == 1, f"{digest}: {len(ours)} signatures by the key"
    descriptor, payload = ours[0]
    assert descriptor["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert set(descriptor["annotations"]) == {"dev.cosignproject.cosign/signature"}
    assert json.loads(payload) == {
        "critical": {
            "identity": {"docker-reference": f"{registry.host}/{repo}"},
            "image": {"docker-manifest-digest": digest},
            "type": "cosign container image signature",
        },
        "optional": None,
    }
    assert simplesigning.claims(payload) == (f"{registry.host}/{repo}", digest)


def test_a_signed_push_signs_its_manifest_and_an_unsigned_one_writes_nothing(
    plain_registry: Registry, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    key = keys.generate()
    assert push(amd64.tar, f"{plain_registry.host}/{repo}:plain", opts()) == amd64.digest
    assert stored(plain_registry, repo, amd64.digest, opts()) is None, "an unsigned push writes no signature"
    assert push(amd64.tar, f"{plain_registry.host}/{repo}:signed", opts(), sign=key) == amd64.digest
    check_signed(plain_registry, repo, amd64.digest, key.public, opts())
    assert not keys.generate().public.verifies(
        layers(plain_registry, repo, amd64.digest, opts())[0][1],
        base64.b64decode(
            layers(plain_registry, repo, amd64.digest, opts())[0][0]["annotations"][simplesigning.ANNOTATION]
        ),
    )


def test_every_platform_and_the_index_are_signed(
    plain_registry: Registry, multi: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    key = keys.generate()
    assert push(multi.tar, f"{plain_registry.host}/{repo}:multi", opts(), sign=key) == multi.index_digest
    for digest in [multi.index_digest, *(i.manifest.digest for i in multi.images)]:
        check_signed(plain_registry, repo, digest, key.public, opts())


def test_a_second_push_with_the_same_key_changes_nothing_another_key_is_added(
    plain_registry: Registry, amd64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    key, other = keys.generate(), keys.generate()
    ref = f"{plain_registry.host}/{repo}:1"
    push(amd64.tar, ref, opts(), sign=key)
    first = stored(plain_registry, repo, amd64.digest, opts())
    push(amd64.tar, ref, opts(), sign=key)
    assert stored(plain_registry, repo, amd64.digest, opts()) == first, "the same key again: the same bytes"
    push(amd64.tar, ref, opts(), sign=other)
    assert len(layers(plain_registry, repo, amd64.digest, opts())) == 2
    check_signed(plain_registry, repo, amd64.digest, key.public, opts())
    check_signed(plain_registry, repo, amd64.digest, other.public, opts())


def test_an_assembled_index_is_signed_in_its_repository(
    plain_registry: Registry, amd64: Layout, arm64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    key = keys.generate()
    push(amd64.tar, f"{plain_registry.host}/{repo}-staging:amd64", opts(), sign=key)
    push(arm64.tar, f"{plain_registry.host}/{repo}-staging:arm64", opts(), sign=key)
    sources = [f"{repo}-staging:amd64", f"{repo}-staging:arm64"]
    digest = make_index(f"{plain_registry.host}/{repo}:1", sources, opts(), sign=key)
    for signed in (digest, amd64.digest, arm64.digest):
        check_signed(plain_registry, repo, signed, key.public, opts())


def test_an_image_a_tag_names_is_signed_into_an_index_only_on_its_own_signature(
    plain_registry: Registry, amd64: Layout, arm64: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    """A tag is whatever whoever can push to it put there last: an assembly step with the release key signs the
    image a staging tag names only when that key signed it already (its job's push), else it refuses before
    anything is written, naming the image; an image named by digest is the caller's word and is signed."""
    key, other = keys.generate(), keys.generate()
    host = plain_registry.host
    push(amd64.tar, f"{host}/{repo}-staging:amd64", opts(), sign=key)
    push(arm64.tar, f"{host}/{repo}-staging:arm64", opts())  # an unsigned push (an attacker's, or a keyless job's)
    sources = [f"{repo}-staging:amd64", f"{repo}-staging:arm64"]
    with pytest.raises(RegistryError, match=rf"staging:arm64 is {arm64.digest}, which carries no signature") as err:
        make_index(f"{host}/{repo}:1", sources, opts(), sign=key)
    assert "\n" not in err.value.message and f"@{arm64.digest}" in err.value.hint
    assert stored(plain_registry, repo, arm64.digest, opts()) is None
    with Client(host, opts()) as client:
        client.need(repo, "pull")
        assert manifests.find(client, repo, "1") is None, "no index was put"
    push(arm64.tar, f"{host}/{repo}-staging:arm64", opts(), sign=other)
    with pytest.raises(RegistryError, match="carries no signature"):
        make_index(f"{host}/{repo}:1", sources, opts(), sign=key)
    pinned = [sources[0], f"{repo}-staging@{arm64.digest}"]
    digest = make_index(f"{host}/{repo}:1", pinned, opts(), sign=key)
    for signed in (digest, amd64.digest, arm64.digest):
        check_signed(plain_registry, repo, signed, key.public, opts())


def test_the_signature_manifest_depends_only_on_its_layers() -> None:
    key = keys.generate()
    layer = signatures.layer_of(simplesigning.sign(key, "127.0.0.1:5000/a", "sha256:" + "0" * 64))
    assert signatures.manifest_of([layer]) == signatures.manifest_of([dict(layer)])
    assert signatures.tag_for("sha256:" + "ab" * 32) == "sha256-" + "ab" * 32 + ".sig"


def test_a_foreign_manifest_under_the_signature_tag_is_refused(
    plain_registry: Registry, amd64: Layout, multi: Layout, repo: str, opts: Callable[..., Options]
) -> None:
    # An index put under the .sig tag of the image: not something to append layers to.
    push(multi.tar, f"{plain_registry.host}/{repo}:{signatures.tag_for(amd64.digest)}", opts())
    with pytest.raises(RegistryError, match=r"holds a application/vnd.oci.image.index.v1\+json, not a signature"):
        push(amd64.tar, f"{plain_registry.host}/{repo}:1", opts(), sign=keys.generate())


def test_payloads_are_read_strictly() -> None:
    good = simplesigning.payload("127.0.0.1:5000/a", "sha256:" + "1" * 64)
    assert good == (
        b'{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/a"},"image":{"docker-manifest-digest":'
        b'"sha256:' + b"1" * 64 + b'"},"type":"cosign container image signature"},"optional":null}'
    )
    doc = json.loads(good)
    doc["critical"]["extra"] = 1
    with pytest.raises(SignatureError, match="not a simple signing payload"):
        simplesigning.claims(json.dumps(doc).encode())
    with pytest.raises(SignatureError, match="is not a sha256 manifest digest"):
        simplesigning.payload("127.0.0.1:5000/a", "sha256:abc")


def test_push_with_a_sign_key_from_the_command_line(
    plain_registry: Registry, amd64: Layout, repo: str, opts: Callable[..., Options], tmp_path: Path
) -> None:
    key = keys.generate()
    sealed = tmp_path / "sign.key"
    sealed.write_bytes(key.pem(b"pw"))
    ref = f"{plain_registry.host}/{repo}:cli"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "DOCKER_CONFIG": str(tmp_path)}
    argv = [sys.executable, "-m", "bootstrap", "push", str(amd64.tar), ref, "--sign-key", str(sealed), "-q"]
    refused = subprocess.run(argv, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
    assert refused.returncode != 0 and "is encrypted and no password was given" in refused.stderr
    with Client(plain_registry.host, opts()) as client:
        client.need(repo, "pull")
        assert manifests.find(client, repo, "cli") is None, "nothing is pushed before the key is read"
    done = subprocess.run(argv, capture_output=True, text=True, env={**env, "BOOTSTRAP_SIGN_PASSWORD": "pw"})
    assert done.returncode == 0, done.stderr
    check_signed(plain_registry, repo, amd64.digest, key.public, opts())


def test_build_push_with_a_sign_key_signs_what_it_pushes(
    plain_registry: Registry, repo: str, tmp_path: Path, gpg_key: GpgKey, serve: Serve, opts: Callable[..., Options]
) -> None:
    """`build --push REF --sign-key KEY` (an encrypted key, its password from the environment) signs the pushed
    manifest as `push --sign-key` does, and attaches the signed records both ways."""
    archive = make_archive(tmp_path, gpg_key, serve)
    ref = f"{plain_registry.host}/{repo}:built"
    out = archive.build(tmp_path / "out", "--sign-key", str(archive.key), "--push", ref)
    digest = json.loads((out / "build.json").read_text())["platforms"][0]["manifest_digest"]
    check_signed(plain_registry, repo, digest, keys.load_public(archive.public), opts())
    other = keys.load_public(archive.other)
    with pytest.raises(AssertionError, match="0 signatures by the key"):
        check_signed(plain_registry, repo, digest, other, opts())
    with Client(plain_registry.host, opts()) as client:
        client.need(repo, "pull")
        assert manifests.find(client, repo, attestations.tag_for(digest)) is not None
    unsigned_ref = f"{plain_registry.host}/{repo}:unsigned"
    unsigned = archive.build(tmp_path / "unsigned", "--push", unsigned_ref)
    assert json.loads((unsigned / "build.json").read_text())["platforms"][0]["manifest_digest"] == digest
    assert len(layers(plain_registry, repo, digest, opts())) == 1, "an unsigned build pushes no signature"


def test_a_fleet_signs_with_the_key_its_file_names_unless_one_is_given(
    plain_registry: Registry, repo: str, tmp_path: Path, gpg_key: GpgKey, serve: Serve, opts: Callable[..., Options]
) -> None:
    """`sign-key` in the fleet file (relative to it) signs what the fleet pushes; --sign-key wins over it."""
    archive = make_archive(tmp_path, gpg_key, serve)
    env = {k: v for k, v in signing_env().items() if k != "BOOTSTRAP_SIGN_KEY"}
    ours, theirs = keys.load_public(archive.public), keys.load_public(archive.other)
    for name, more, signer, not_signer in (
        ("file", (), ours, theirs),
        ("given", ("--sign-key", str(archive.other.with_suffix(".key"))), theirs, ours),
    ):
        fleet = tmp_path / f"{name}.toml"
        push_to = f"{plain_registry.host}/{repo}-{name}:{{codename}}"
        fleet.write_text(f'sign-key = "release.key"\n\n[[image]]\nrecipe = "signed.toml"\npush = ["{push_to}"]\n')
        args = ["fleet", str(fleet), "-o", str(tmp_path / f"out-{name}"), *archive.source, "--json", *more]
        proc = cli(*args, env=env)
        assert proc.returncode == 0, proc.stderr
        (row,) = json.loads(proc.stdout)
        check_signed(plain_registry, f"{repo}-{name}", row["digest"], signer, opts())
        with pytest.raises(AssertionError, match="0 signatures by the key"):
            check_signed(plain_registry, f"{repo}-{name}", row["digest"], not_signer, opts())
