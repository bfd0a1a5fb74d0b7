"""`bootstrap policy`: the policy.json and registries.d file containers/image needs to require our signatures
(the e2e test in tests/registry/test_signatures_skopeo.py has skopeo enforce them)."""

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.errors import BootstrapError
from bootstrap.publish import policy
from bootstrap.sign import keys

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "bootstrap", "policy", *args], capture_output=True, text=True, env=env)


def test_policy_requires_the_key_for_each_scope_and_registries_d_reads_attachments(tmp_path: Path) -> None:
    key = keys.generate()
    (tmp_path / "key.pub").write_bytes(key.public.pem())
    out = tmp_path / "c"
    done = cli(
        "--key",
        str(tmp_path / "key.pub"),
        "--registry",
        "127.0.0.1:5000/debian",
        "--registry",
        "localhost",
        "-o",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "policy.json").read_text())
    assert doc["default"] == [{"type": "insecureAcceptAnything"}]
    scopes = doc["transports"]["docker"]
    assert list(scopes) == ["127.0.0.1:5000/debian", "localhost"]
    for requirement in scopes.values():
        assert requirement == [
            {
                "type": "sigstoreSigned",
                "keyData": base64.b64encode(key.public.pem()).decode(),
                "signedIdentity": {"type": "matchRepository"},
            }
        ]
    assert (out / "registries.d" / "bootstrap.yaml").read_text() == (
        "# containers-registries.d(5): where the image signatures of these scopes are read\n"
        "docker:\n"
        '  "127.0.0.1:5000/debian":\n    use-sigstore-attachments: true\n'
        '  "localhost":\n    use-sigstore-attachments: true\n'
    )


def test_key_path_and_reject_others() -> None:
    chosen = policy.Policy(keys.generate().public, ("127.0.0.1:5000",), "/etc/pki/bootstrap.pub", reject_others=True)
    doc = json.loads(chosen.policy_json())
    assert doc["default"] == [{"type": "reject"}]
    assert doc["transports"]["docker"]["127.0.0.1:5000"][0]["keyPath"] == "/etc/pki/bootstrap.pub"
    assert "keyData" not in doc["transports"]["docker"]["127.0.0.1:5000"][0]


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("127.0.0.1:5000/debian:trixie", "names a tag or digest"),
        ("bad host!", "is not a registry host"),
        ("127.0.0.1:5000/UPPER", "is not a valid repository name"),
    ],
)
def test_bad_scopes_are_refused(scope: str, message: str) -> None:
    with pytest.raises(BootstrapError, match=message):
        policy.scope(scope)


def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "not.pub").write_text("not a key\n")
    out = tmp_path / "c"
    done = cli("--key", str(tmp_path / "not.pub"), "--registry", "127.0.0.1:5000", "-o", str(out))
    assert done.returncode != 0 and "not a PEM public key" in done.stderr
    (tmp_path / "key.pub").write_bytes(keys.generate().public.pem())
    done = cli("--key", str(tmp_path / "key.pub"), "--registry", "127.0.0.1:5000/a:b", "-o", str(out))
    assert done.returncode != 0 and "names a tag or digest" in done.stderr
    assert len([line for line in done.stderr.splitlines() if line.startswith("error")]) == 1
    done = cli("--key", str(tmp_path / "key.pub"), "--registry", "localhost", "--key-path", "rel.pub", "-o", str(out))
    assert done.returncode != 0 and "is not absolute" in done.stderr
    assert not out.exists()


def test_gpg_policy_requires_signed_by_and_reads_the_lookaside(tmp_path: Path) -> None:
    keyring = tmp_path / "key.gpg"
    keyring.write_bytes(b"\x99 a keyring")
    out = tmp_path / "c"
    args = (
        "--gpg-key",
        str(keyring),
        "--lookaside",
        "file:///srv/sigs",
        "--registry",
        "127.0.0.1:5000/a",
        "-o",
        str(out),
    )
    done = cli(*args)
    assert done.returncode == 0, done.stderr
    doc = json.loads((out / "policy.json").read_text())
    assert doc["transports"]["docker"]["127.0.0.1:5000/a"] == [
        {"type": "signedBy", "keyType": "GPGKeys", "keyData": base64.b64encode(b"\x99 a keyring").decode()}
    ]
    assert (
        (out / "registries.d" / "bootstrap.yaml")
        .read_text()
        .endswith('  "127.0.0.1:5000/a":\n    lookaside: "file:///srv/sigs"\n')
    )
    bad = cli(
        "--gpg-key", str(keyring), "--lookaside", "/srv/sigs", "--registry", "localhost", "-o", str(tmp_path / "d")
    )
    assert bad.returncode != 0 and "is not a URL" in bad.stderr and not (tmp_path / "d").exists()
    alone = cli("--gpg-key", str(keyring), "--registry", "localhost", "-o", str(tmp_path / "d"))
    assert alone.returncode != 0 and "--gpg-key and --lookaside go together" in alone.stderr
