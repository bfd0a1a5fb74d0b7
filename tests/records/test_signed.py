"""Signed records: a build with --sign-key writes DSSE envelopes of its SBOMs and provenance that an independent
library (securesystemslib) verifies with the public key; `verify --key` and `check --against DIR --key` refuse
records signed by another key, a changed byte, a missing envelope, before trusting anything."""

import base64
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.signer import SSlibKey

from bootstrap.errors import SignatureError
from bootstrap.records import attestation, outputs
from bootstrap.registry import artifacts
from bootstrap.registry.layout import Layout
from bootstrap.sign import dsse, keys
from tests.cli.test_cli import cli
from tests.conftest import Serve
from tests.fixtures.gpg import GpgKey
from tests.records.signed_build import PASSWORD, Archive, make_archive, replace_in, signing_env, tampered

FORMATS = ("--sbom-format", "cyclonedx", "--sbom-format", "spdx3")


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey, serve_session: Serve) -> Archive:
    return make_archive(tmp_path_factory.mktemp("signed"), gpg_key, serve_session)


@pytest.fixture(scope="module")
def signed(archive: Archive, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built with the recipe shortcut (`bootstrap RECIPE --sign-key FILE`), the key encrypted."""
    out = tmp_path_factory.mktemp("out") / "signed"
    return archive.build(out, "--sign-key", str(archive.key), *FORMATS, command=())


def _sslib_key(pub: Path) -> SSlibKey:
    public = keys.load_public(pub)
    return SSlibKey.from_crypto(load_pem_public_key(pub.read_bytes()), keyid=public.key_id())


def test_a_signed_build_adds_envelopes_that_securesystemslib_verifies(
    archive: Archive, signed: Path, tmp_path: Path
) -> None:
    plain = archive.build(tmp_path / "plain", *FORMATS)
    envelopes = {o.name() for o in outputs.SIGNED}
    assert {p.name for p in signed.iterdir()} == {p.name for p in plain.iterdir()} | envelopes
    for p in plain.iterdir():
        if p.name != outputs.SUMMARY.file:
            assert (signed / p.name).read_bytes() == p.read_bytes(), f"{p.name}: signing changes no other output"
    summary = json.loads((signed / outputs.SUMMARY.file).read_text())
    key_id = keys.load_public(archive.public).key_id()
    assert summary["signed"] == {"keyid": key_id} and "signed" not in json.loads((plain / "build.json").read_text())
    assert set(summary["files"]) >= envelopes
    manifest = summary["image"]["manifest_digest"]
    theirs = _sslib_key(archive.public)
    predicates = {
        outputs.SPDX: attestation.SPDX_PREDICATE,
        outputs.SPDX3: attestation.SPDX_PREDICATE,
        outputs.CYCLONEDX: attestation.CYCLONEDX_PREDICATE,
    }
    for row in outputs.SIGNED:
        doc = json.loads((signed / row.name()).read_bytes())
        assert doc["payloadType"] == "application/vnd.in-toto+json" and doc["signatures"][0]["keyid"] == key_id
        envelope = Envelope.from_dict(doc)
        assert list(envelope.verify([theirs], 1)) == [key_id], f"{row.file} verifies independently"
        assert row.signs is not None
        record = (signed / row.signs.name()).read_bytes()
        if row.signs is outputs.PROVENANCE:
            assert envelope.payload == record, "the provenance is signed as it is"
            continue
        statement = json.loads(envelope.payload)
        assert statement["_type"] == "https://in-toto.io/Statement/v1"
        assert statement["predicateType"] == predicates[row.signs]
        assert statement["subject"] == [{"name": summary["build"]["tag"], "digest": {"sha256": manifest[7:]}}]
        assert statement["predicate"] == json.loads(record)
    layout = Layout(signed)
    attached = {(r.path.name, r.artifact_type) for r in artifacts.records_of(layout, layout.top())[0]}
    assert {(n, dsse.MEDIA_TYPE) for n in envelopes} <= attached, "push attaches the envelopes"


def test_signing_takes_well_under_the_budget(archive: Archive) -> None:
    """What signing adds to a build: a Statement and an envelope per SBOM and one for the provenance, here for
    SBOMs of 400 packages each (five times a slim image's); the budget is 0.2 s."""
    key = keys.load_private(archive.key, lambda: PASSWORD.encode())
    package = {"name": "p", "versionInfo": "1.0-1", "licenseConcluded": "MIT", "copyrightText": "Copyright " * 40}
    sbom = json.dumps({"packages": [{**package, "SPDXID": f"SPDXRef-{i}"} for i in range(400)]}, indent=2).encode()
    started = time.monotonic()
    for row in outputs.SIGNED:
        assert row.signs is not None
        payload = sbom if row.signs is outputs.PROVENANCE else attestation.sbom_statement(sbom, "p", "t", "sha256:0")
        dsse.sign(payload, key)
    assert time.monotonic() - started < 0.2


def _refused(args: list[str], want: str) -> str:
    proc = cli(*args, env=signing_env())
    assert proc.returncode == 1, proc.stdout + proc.stderr
    first = proc.stderr.splitlines()[0]
    assert first.startswith("error: ") and want in first, proc.stderr
    assert len(proc.stderr.splitlines()) <= 2, "one error line and one hint line"
    return first


def test_verify_key_checks_the_signatures_before_it_rebuilds(signed: Path, archive: Archive, tmp_path: Path) -> None:
    source = list(archive.source)
    ok = cli("verify", str(signed), "--key", str(archive.public), *source, "-q")
    assert ok.returncode == 0, ok.stderr
    assert "rebuild bit for bit; the records are signed by" in ok.stdout
    verify = ["verify", "--key", str(archive.public), *source]

    def refused(directory: Path, want: str, key: Path | None = None) -> None:
        args = [*verify, str(directory)]
        if key is not None:
            args[2] = str(key)
        _refused(args, want)

    refused(signed, "signed by another key", archive.other)
    sbom = outputs.SPDX.file
    refused(tampered(signed, tmp_path / "sbom", lambda d: replace_in(d / sbom, b'"1.0"', b'"1.1"')),
            f"{sbom} is not the file the signed provenance names")  # fmt: skip

    def flip_payload(d: Path) -> None:
        path = d / outputs.SPDX_SIGNED.file
        doc = json.loads(path.read_bytes())
        payload = bytearray(base64.b64decode(doc["payload"]))
        payload[len(payload) // 2] ^= 1
        doc["payload"] = base64.b64encode(bytes(payload)).decode()
        path.write_text(json.dumps(doc))

    refused(tampered(signed, tmp_path / "envelope", flip_payload), "does not match the payload")
    refused(tampered(signed, tmp_path / "missing", lambda d: (d / outputs.SPDX_SIGNED.file).unlink()),
            f"{sbom} has no signed envelope")  # fmt: skip
    unsigned = archive.build(tmp_path / "unsigned")
    refused(unsigned, "the records are not signed")


def test_check_against_a_directory_with_a_key(signed: Path, archive: Archive, tmp_path: Path) -> None:
    check = ["check", str(archive.recipe), *archive.source, "--key"]
    ok = cli(*check, str(archive.public), "--against", str(signed), env=signing_env())
    assert ok.returncode == 0 and "up to date" in ok.stdout, ok.stderr
    _refused([*check, str(archive.other), "--against", str(signed)], "signed by another key")
    lock = outputs.LOCK.file
    changed = tampered(signed, tmp_path / "lock", lambda d: replace_in(d / lock, b'"1.0"', b'"0.9"'))
    _refused([*check, str(archive.public), "--against", str(changed)], f"{lock} is not the file the signed provenance")
    _refused([*check, str(archive.public), "--against", str(signed / lock)], "a lock file alone carries no signature")


def test_in_a_registry_only_what_the_signed_provenance_covers_is_checked(
    signed: Path, archive: Archive, tmp_path: Path
) -> None:
    """Whoever can push may attach more records beside a signed build's (here a CycloneDX SBOM without an
    envelope): in a registry they are neither trusted nor a reason to refuse the signed ones; in an output
    directory, which is the build's alone, they are refused."""
    from bootstrap.publish import signed as signed_mod

    key = keys.load_public(archive.public)
    narrow = archive.build(tmp_path / "narrow", "--sign-key", str(archive.key), "--sbom-format", "spdx3")
    files = signed_mod.read_directory(narrow)
    image = json.loads((narrow / "build.json").read_text())["image"]["manifest_digest"]
    cdx = outputs.CYCLONEDX.name()
    assert cdx not in files
    covered = signed_mod.check(files, key, "registry", complete=False, image=image)
    extra = {**files, cdx: (signed / cdx).read_bytes()}  # no envelope: unsigned
    assert signed_mod.check(extra, key, "registry", complete=False, image=image) == covered
    with pytest.raises(SignatureError, match="has no signed envelope"):
        signed_mod.check(extra, key, "dir", complete=True)
