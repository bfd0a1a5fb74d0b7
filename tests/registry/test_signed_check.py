"""`check --against REF --key PUB`: the signed records attached to a pushed image (a real docker-registry with
TLS and htpasswd) are checked against the key before the lock among them is trusted."""

import json
from pathlib import Path

import pytest

from bootstrap.records import outputs
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
