"""`check --against REF --key PUB`: the signed records attached to a pushed image (a real docker-registry with
TLS and htpasswd) are checked against the key before the lock among them is trusted."""

import base64
import json
from pathlib import Path

import pytest

from bootstrap.image.oci import MEDIA_INDEX, canonical_json
from bootstrap.records import outputs
from bootstrap.registry import Options, artifacts, attestations, manifests, referrers
from bootstrap.registry.client import Client
from bootstrap.registry.manifests import Manifest
from tests.cli.test_cli import cli
from tests.conftest import Serve
from tests.fixtures.gpg import GpgKey
from tests.records.signed_build import make_archive, replace_in, signing_env, tampered
from tests.registry.conftest import PASSWORD, USER, TLSRegistry

pytestmark = pytest.mark.e2e


def test_check_against_a_pushed_signed_image(
    tls_registry: TLSRegistry, repo: str, tmp_path: Path, gpg_key: GpgKey, serve: Serve
) -> None:
    archive = make_archive(tmp_path, gpg_key, serve)
    signed = archive.build(tmp_path / "signed", "--sign-key", str(archive.key))
    arch = json.loads((signed / outputs.SUMMARY.file).read_text())["platforms"][0]["arch"]
    access = ["--creds", f"{USER}:{PASSWORD}", "--ca-cert", str(tls_registry.ca.ca_cert)]
    ref = f"{tls_registry.host}/{repo}:signed"
    pushed = cli("push", str(signed), ref, *access)
    assert pushed.returncode == 0, pushed.stderr
    check = ["check", str(archive.recipe), *archive.source, *access, "--arch", arch, "--against"]

    def run(against: str, key: Path) -> tuple[int, str, str]:
        proc = cli(*check, against, "--key", str(key), env=signing_env())
        return proc.returncode, proc.stdout, proc.stderr

    code, out, err = run(ref, archive.public)
    assert code == 0 and out.startswith("up to date"), err
    code, _, err = run(ref, archive.other)
    assert code == 1 and "signed by another key" in err.splitlines()[0], err
    resigned = archive.build(tmp_path / "resigned", "--sign-key", str(archive.other.with_suffix(".key")))
    assert cli("push", str(resigned), ref, *access).returncode == 0, "the same image, its records signed anew"
    for key in (archive.public, archive.other):
        code, out, err = run(ref, key)
        assert code == 0 and out.startswith("up to date"), f"each key finds its own envelopes: {err}"
    changed = tampered(signed, tmp_path / "changed", lambda d: replace_in(d / outputs.SPDX.file, b'"1.0"', b'"1.1"'))
    changed_ref = f"{tls_registry.host}/{repo}-changed:signed"
    assert cli("push", str(changed), changed_ref, *access).returncode == 0
    code, _, err = run(changed_ref, archive.public)
    assert code == 1 and "sbom.spdx.json is not the file the signed provenance names" in err.splitlines()[0], err
    unsigned = archive.build(tmp_path / "unsigned")
    unsigned_ref = f"{tls_registry.host}/{repo}-unsigned:1"
    assert cli("push", str(unsigned), unsigned_ref, *access).returncode == 0
    code, _, err = run(unsigned_ref, archive.public)
    assert code == 1 and "the records are not signed" in err.splitlines()[0], err


def test_a_signed_multi_architecture_build(
    tls_registry: TLSRegistry, repo: str, tmp_path: Path, gpg_key: GpgKey, serve: Serve
) -> None:
    """Each platform's SBOMs have their own envelopes (`sbom-ARCH.spdx.json.dsse.json`) about that platform's
    image; the image of one platform in the registry is checked with its own records and the provenance."""
    archive = make_archive(tmp_path, gpg_key, serve, ("amd64", "arm64"))
    signed = archive.build(tmp_path / "signed", "--sign-key", str(archive.key), "--arch", "amd64,arm64")
    summary = json.loads((signed / outputs.SUMMARY.file).read_text())
    names = {p.name for p in signed.iterdir()}
    assert {"sbom-arm64.spdx.json.dsse.json", "sbom-amd64.spdx3.json.dsse.json"} <= names
    assert "provenance.intoto.json.dsse.json" in names
    for platform in summary["platforms"]:
        envelope = json.loads((signed / f"sbom-{platform['arch']}.spdx.json.dsse.json").read_bytes())
        statement = json.loads(base64.b64decode(envelope["payload"]))
        assert statement["subject"][0]["digest"] == {"sha256": platform["manifest_digest"][7:]}
    access = ["--creds", f"{USER}:{PASSWORD}", "--ca-cert", str(tls_registry.ca.ca_cert)]
    ref = f"{tls_registry.host}/{repo}:multi"
    pushed = cli("push", str(signed), ref, *access)
    assert pushed.returncode == 0, pushed.stderr
    check = ["check", str(archive.recipe), *archive.source, *access, "--arch", "arm64", "--against", ref, "--key"]
    ok = cli(*check, str(archive.public), env=signing_env())
    assert ok.returncode == 0 and ok.stdout.startswith("up to date"), ok.stderr
    other = cli(*check, str(archive.other), env=signing_env())
    assert other.returncode == 1 and "signed by another key" in other.stderr.splitlines()[0], other.stderr
    options = Options(ca_cert=tls_registry.ca.ca_cert, creds=f"{USER}:{PASSWORD}", certs_dir=tmp_path)
    with Client(tls_registry.host, options) as client:
        client.need(repo, "pull")
        index = manifests.find(client, repo, "multi")
        assert index is not None and index.is_index
        for digest in [index.digest, *(p["manifest_digest"] for p in summary["platforms"])]:
            att = manifests.find(client, repo, attestations.tag_for(digest))
            assert att is not None, f"no attestations of {digest}"
            titles = {d["annotations"]["org.opencontainers.image.title"] for d in att.json["layers"]}
            assert "provenance.intoto.json.dsse.json" in titles
            if digest != index.digest:
                assert any(t.startswith("sbom-") for t in titles), f"{digest}: its platform's SBOM envelopes"


def test_check_finds_the_signed_records_through_the_cosign_attestations(
    tls_registry: TLSRegistry, repo: str, tmp_path: Path, gpg_key: GpgKey, serve: Serve
) -> None:
    """The referrer artifacts gone (docker-registry has no referrers API: their list under the referrers tag is
    emptied), `check --key` reads the envelopes from the `.att` manifest and the lock by the digest its image's
    label names, and still refuses another key."""
    archive = make_archive(tmp_path, gpg_key, serve)
    signed = archive.build(tmp_path / "signed", "--sign-key", str(archive.key))
    summary = json.loads((signed / outputs.SUMMARY.file).read_text())
    arch, digest = summary["platforms"][0]["arch"], summary["platforms"][0]["manifest_digest"]
    access = ["--creds", f"{USER}:{PASSWORD}", "--ca-cert", str(tls_registry.ca.ca_cert)]
    ref = f"{tls_registry.host}/{repo}:signed"
    pushed = cli("push", str(signed), ref, *access)
    assert pushed.returncode == 0, pushed.stderr
    empty = Manifest(MEDIA_INDEX, canonical_json({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": []}))
    options = Options(ca_cert=tls_registry.ca.ca_cert, creds=f"{USER}:{PASSWORD}", certs_dir=tmp_path)
    with Client(tls_registry.host, options) as client:
        client.need(repo, "pull,push")
        manifests.put(client, repo, referrers.tag_for(digest), empty)
        assert not referrers.listing(client, repo, digest, artifacts.ATTACHED_TYPES)
    check = ["check", str(archive.recipe), *archive.source, *access, "--arch", arch, "--against", ref, "--key"]
    ok = cli(*check, str(archive.public), env=signing_env())
    assert ok.returncode == 0 and ok.stdout.startswith("up to date"), ok.stderr
    other = cli(*check, str(archive.other), env=signing_env())
    assert other.returncode == 1 and "signed by another key" in other.stderr.splitlines()[0], other.stderr
