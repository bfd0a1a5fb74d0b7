"""Signing keys: made, written, read back (plain and encrypted), signing and checking with real ECDSA."""

import subprocess
import sys
from pathlib import Path

import pytest

from bootstrap.errors import BootstrapError, SignatureError
from bootstrap.sign import keys


def test_a_signature_verifies_with_its_own_key_only() -> None:
    key, other = keys.generate(), keys.generate()
    sig = key.sign(b"payload")
    assert key.public.verifies(b"payload", sig)
    assert not key.public.verifies(b"payload!", sig), "another payload"
    assert not other.public.verifies(b"payload", sig), "another key"
    assert not key.public.verifies(b"payload", b"\x30\x00"), "a malformed signature is a failed check, not a crash"
    assert key.public.key_id() != other.public.key_id() and len(key.public.key_id()) == 64


def test_keys_round_trip_through_files(tmp_path: Path) -> None:
    key = keys.generate()
    plain, sealed, pub = tmp_path / "plain.key", tmp_path / "sealed.key", tmp_path / "key.pub"
    plain.write_bytes(key.pem(None))
    sealed.write_bytes(key.pem(b"secret"))
    pub.write_bytes(key.public.pem())
    assert b"ENCRYPTED" in sealed.read_bytes() and b"ENCRYPTED" not in plain.read_bytes()

    def never() -> bytes:
        raise AssertionError("a plain key asks for no password")

    data = b"x"
    assert keys.load_public(pub).verifies(data, keys.load_private(plain, never).sign(data))
    assert keys.load_public(pub).verifies(data, keys.load_private(sealed, lambda: b"secret").sign(data))
    with pytest.raises(BootstrapError, match="sealed.key: not a usable signing key") as wrong:
        keys.load_private(sealed, lambda: b"wrong")
    assert wrong.value.hint == "check the password"


def test_openssl_keys_are_read_and_other_curves_refused(tmp_path: Path) -> None:
    """Keys made by another tool (openssl, SEC 1 and PKCS#8) are read; a P-384 key or an RSA key is refused."""
    sec1 = tmp_path / "sec1.pem"
    subprocess.run(["openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", str(sec1)], check=True)
    assert keys.load_private(sec1, lambda: b"").public.verifies(b"a", keys.load_private(sec1, lambda: b"").sign(b"a"))
    p384 = tmp_path / "p384.pem"
    subprocess.run(["openssl", "ecparam", "-name", "secp384r1", "-genkey", "-noout", "-out", str(p384)], check=True)
    with pytest.raises(BootstrapError, match="not an ECDSA P-256 key"):
        keys.load_private(p384, lambda: b"")
    pub384 = tmp_path / "p384.pub"
    subprocess.run(["openssl", "ec", "-in", str(p384), "-pubout", "-out", str(pub384)], check=True, capture_output=True)
    with pytest.raises(SignatureError, match="not an ECDSA P-256 public key"):
        keys.load_public(pub384)
    with pytest.raises(BootstrapError, match="missing.key"):
        keys.load_private(tmp_path / "missing.key", lambda: b"")


def test_the_password_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sealed = tmp_path / "sealed.key"
    sealed.write_bytes(keys.generate().pem(b"pw"))
    for name in keys.PASSWORD_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COSIGN_PASSWORD", "pw")
    assert keys.load_private(sealed, keys.password_for(sealed)).sign(b"x")
    monkeypatch.setenv("BOOTSTRAP_SIGN_PASSWORD", "wrong")
    with pytest.raises(BootstrapError, match="not a usable signing key"):
        keys.load_private(sealed, keys.password_for(sealed))
    for name in keys.PASSWORD_ENV:
        monkeypatch.delenv(name)
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from bootstrap.sign import keys; from pathlib import Path; p = Path({str(sealed)!r}); "
            "keys.load_private(p, keys.password_for(p))",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    assert "is encrypted and no password was given" in proc.stderr, "no terminal, no password: an error, no hang"
