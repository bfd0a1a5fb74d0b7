"""GPG simple signing: the payload, signatures made by a real gpg key, the lookaside files (skopeo checks them
in tests/registry/test_signatures_skopeo.py)."""

import json
from pathlib import Path

import pytest

from bootstrap.errors import SignatureError
from bootstrap.sign import gpgsign
from tests.fixtures.gpg import GpgKey

DIGEST = "sha256:" + "2" * 64


@pytest.fixture
def home(gpg_key: GpgKey, monkeypatch: pytest.MonkeyPatch) -> GpgKey:
    monkeypatch.setenv("GNUPGHOME", str(gpg_key.home))
    return gpg_key


def test_the_payload_names_the_exact_reference_and_digest() -> None:
    data = gpgsign.payload("127.0.0.1:5000/a:1", DIGEST)
    assert data == (
        b'{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/a:1"},"image":{"docker-manifest-digest":"'
        + DIGEST.encode()
        + b'"},"type":"atomic container signature"},"optional":{}}'
    )
    assert json.loads(data)["critical"]["type"] == "atomic container signature"


def test_signatures_go_to_the_lookaside_once_per_key(home: GpgKey, other_gpg_key: GpgKey, tmp_path: Path) -> None:
    signer = gpgsign.GpgSigner(home.uid, tmp_path)
    assert signer.fingerprint == home.fingerprint
    assert signer.sign_all("a/b", "127.0.0.1:5000/a/b:1", [DIGEST]) == 1
    stored = tmp_path / f"a/b@sha256={'2' * 64}" / "signature-1"
    assert gpgsign.signer_of(stored.read_bytes()) == (home.fingerprint, gpgsign.payload("127.0.0.1:5000/a/b:1", DIGEST))
    assert signer.sign_all("a/b", "127.0.0.1:5000/a/b:1", [DIGEST]) == 0, "the same key again: nothing new"
    assert signer.sign_all("a/b", "127.0.0.1:5000/a/b:2", [DIGEST]) == 1, "another tag: another payload"
    assert sorted(p.name for p in stored.parent.iterdir()) == ["signature-1", "signature-2"]
    assert gpgsign.signer_of(b"not a signature") is None


def test_an_unknown_key_is_one_line(home: GpgKey) -> None:
    with pytest.raises(SignatureError, match="gpg has no secret key 'nobody@example.invalid'") as err:
        gpgsign.GpgSigner("nobody@example.invalid", Path("/nonexistent"))
    assert "\n" not in str(err.value.message)
