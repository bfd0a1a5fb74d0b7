"""Signed records pushed as cosign attestations (`sha256-<hex>.att`) into a real docker-registry: the manifest's
layout, layers and config read back over the wire, the envelopes checked by an independent DSSE implementation
(securesystemslib), re-pushes, layers put by others, and the records found through the attestations alone when
the referrer artifacts are gone."""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from bootstrap.errors import SignatureError
from bootstrap.image.oci import MEDIA_CONFIG, MEDIA_INDEX, MEDIA_MANIFEST, Blob, canonical_json
from bootstrap.publish import signed
from bootstrap.records import attestation, outputs, provenance
from bootstrap.registry import Options, RegistryError, artifacts, attestations, manifests, push, referrers, signatures
from bootstrap.registry.blobs import Uploader
from bootstrap.registry.client import Client
from bootstrap.registry.manifests import Manifest
from bootstrap.sign import dsse, keys
from tests.registry.outputs import Output, build_output
from tests.registry.servers import Registry

pytestmark = pytest.mark.e2e


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sign_output(out: Output, key: keys.SigningKey) -> dict[str, bytes]:
    """Make `out` a signed build's output: a provenance naming the lock and the SBOM by digest, its envelope
    and the SBOM's, and build.json giving every file's digest. Returns the envelopes by name."""
    d = out.directory
    byproducts = [
        {"name": n, "digest": {"sha256": _sha((d / n).read_bytes())}} for n in ("lock.json", "sbom.spdx.json")
    ]
    statement = json.loads((d / outputs.PROVENANCE.file).read_text())
    statement["predicate"] = {"runDetails": {"byproducts": byproducts}}
    (d / outputs.PROVENANCE.file).write_text(json.dumps(statement))
    sbom = attestation.sbom_statement(
        (d / "sbom.spdx.json").read_bytes(), attestation.SPDX_PREDICATE, "debian:fixture-slim", out.digest
    )
    envelopes = {
        outputs.PROVENANCE_SIGNED.name(): dsse.sign((d / outputs.PROVENANCE.file).read_bytes(), key),
        outputs.SPDX_SIGNED.name(): dsse.sign(sbom, key),
    }
    for name, data in envelopes.items():
        (d / name).write_bytes(data)
    summary = json.loads((d / "build.json").read_text())
    summary["files"] = {p.name: "sha256:" + _sha(p.read_bytes()) for p in d.iterdir() if p.name != "build.json"}
    (d / "build.json").write_text(json.dumps(summary))
    return envelopes


def att_manifest(registry: Registry, repo: str, digest: str, options: Options) -> Manifest | None:
    with Client(registry.host, options) as client:
        client.need(repo, "pull")
        return manifests.find(client, repo, attestations.tag_for(digest))


def read_att(
    registry: Registry, repo: str, digest: str, options: Options
) -> tuple[Manifest, dict[str, Any], list[tuple[Any, bytes]]]:
    found = att_manifest(registry, repo, digest, options)
    assert found is not None, f"no attestation manifest for {digest}"
    with Client(registry.host, options) as client:
        client.need(repo, "pull")
        config = manifests.config(client, repo, found.json["config"])
        layers = [(d, manifests.blob(client, repo, d)) for d in found.json["layers"]]
    return found, config, layers


def _theirs(public: keys.PublicKey) -> SSlibKey:
    return SSlibKey.from_crypto(load_pem_public_key(public.pem()), keyid=public.key_id())


def test_signed_records_are_cosign_attestations_of_the_image(
    plain_registry: Registry, repo: str, tmp_path: Path, opts: Callable[..., Options]
) -> None:
    key = keys.generate()
    out = build_output(tmp_path)
    envelopes = sign_output(out, key)
    ref = f"{plain_registry.host}/{repo}:signed"
    assert push(out.directory, ref, opts()) == out.digest
    assert attestations.tag_for(out.digest) == f"sha256-{out.digest[7:]}.att"
    found, config, layers = read_att(plain_registry, repo, out.digest, opts())
    assert found.media_type == MEDIA_MANIFEST and found.json["config"]["mediaType"] == MEDIA_CONFIG
    assert "subject" not in found.json and "artifactType" not in found.json
    assert config["rootfs"] == {"type": "layers", "diff_ids": [d["digest"] for d, _ in layers]}
    assert config["history"] == [{"created": "0001-01-01T00:00:00Z"}] * len(layers)
    assert {d["annotations"][attestations.TITLE]: data for d, data in layers} == envelopes
    predicates = {outputs.PROVENANCE_SIGNED.name(): provenance.PREDICATE_TYPE}
    predicates[outputs.SPDX_SIGNED.name()] = attestation.SPDX_PREDICATE
    for descriptor, data in layers:
        title = descriptor["annotations"][attestations.TITLE]
        assert descriptor["mediaType"] == "application/vnd.dsse.envelope.v1+json"
        assert descriptor["annotations"] == {
            "predicateType": predicates[title],
            "dev.cosignproject.cosign/signature": "",
            "org.opencontainers.image.title": title,
        }
        envelope = Envelope.from_dict(json.loads(data))
        assert list(envelope.verify([_theirs(key.public)], 1)) == [key.public.key_id()]
        assert json.loads(envelope.payload)["subject"][0]["digest"] == {"sha256": out.digest[7:]}
    assert push(out.directory, ref, opts()) == out.digest
    again = att_manifest(plain_registry, repo, out.digest, opts())
    assert again is not None and again.digest == found.digest, "the same build pushed twice: nothing appended"


def test_layers_put_by_others_are_kept_and_ours_appended(
    plain_registry: Registry, repo: str, tmp_path: Path, opts: Callable[..., Options]
) -> None:
    out = build_output(tmp_path)
    ref = f"{plain_registry.host}/{repo}:signed"
    assert push(out.directory, ref, opts()) == out.digest, "the image first, unsigned"
    theirs = Blob(dsse.MEDIA_TYPE, dsse.sign(b'{"predicateType": "https://example.invalid/x"}', keys.generate()))
    layer = theirs.descriptor(annotations={"predicateType": "https://example.invalid/x"})
    manifest, config = signatures.manifest_of([layer])
    with Client(plain_registry.host, opts()) as client, signatures.sources([theirs, config]) as blobs:
        client.need(repo, "pull,push")
        for blob in blobs:
            Uploader(client, repo).ensure(blob)
        manifests.put(client, repo, attestations.tag_for(out.digest), manifest)
    envelopes = sign_output(out, keys.generate())
    assert push(out.directory, ref, opts()) == out.digest
    _, config_doc, layers = read_att(plain_registry, repo, out.digest, opts())
    assert [d["digest"] for d, _ in layers][0] == theirs.digest, "the other layer stays first"
    assert sorted(data for _, data in layers[1:]) == sorted(envelopes.values())
    assert len(config_doc["history"]) == 3


def test_a_tag_that_is_not_an_attestation_manifest_is_refused(
    plain_registry: Registry, repo: str, tmp_path: Path, opts: Callable[..., Options]
) -> None:
    out = build_output(tmp_path)
    sign_output(out, keys.generate())
    ref = f"{plain_registry.host}/{repo}:signed"
    empty = Manifest(MEDIA_INDEX, canonical_json({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": []}))
    with Client(plain_registry.host, opts()) as client:
        client.need(repo, "pull,push")
        manifests.put(client, repo, attestations.tag_for(out.digest), empty)
    with pytest.raises(RegistryError, match=r"holds a application/vnd.oci.image.index.v1\+json, not an attestation"):
        push(out.directory, ref, opts())


def test_the_records_are_found_through_the_attestations_alone(
    plain_registry: Registry, repo: str, tmp_path: Path, opts: Callable[..., Options]
) -> None:
    """docker-registry has no referrers API: the referrer artifacts are listed under the referrers tag. With
    that list emptied, the envelopes come from the .att manifest and the lock by the digest its image's label
    names; the signed provenance vouches for it."""
    key = keys.generate()
    out = build_output(tmp_path)
    sign_output(out, key)
    ref = f"{plain_registry.host}/{repo}:signed"
    assert push(out.directory, ref, opts()) == out.digest
    empty = Manifest(MEDIA_INDEX, canonical_json({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": []}))
    with Client(plain_registry.host, opts()) as client:
        client.need(repo, "pull,push")
        assert referrers.listing(client, repo, out.digest, artifacts.ATTACHED_TYPES), (
            "the referrers tag lists the artifacts"
        )
        manifests.put(client, repo, referrers.tag_for(out.digest), empty)
        assert not referrers.listing(client, repo, out.digest, artifacts.ATTACHED_TYPES)
    found = artifacts.records_at(ref, "amd64", opts())
    assert found is not None and found.image == out.digest
    assert set(found.files) == {outputs.PROVENANCE_SIGNED.name(), outputs.SPDX_SIGNED.name()}
    assert found.loose == [out.lock.to_json()]
    files = signed.place(signed.pick(found.files, key.public), found.loose, key.public, ref)
    trusted = signed.check(files, key.public, ref, complete=False, image=out.digest)
    assert signed.trusted_lock(files, trusted, ref) == out.lock.to_json()
    other = keys.generate().public
    files = signed.place(signed.pick(found.files, other), found.loose, other, ref)
    assert "lock.json" not in files, "a lock is placed only by a provenance the key opens"
    with pytest.raises(SignatureError, match="signed by another key"):
        signed.check(files, other, ref, complete=False, image=out.digest)
