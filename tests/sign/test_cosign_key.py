"""cosign's encrypted key files, read by `keys.load_private`.

No cosign binary can be installed here (Debian 12 has no package, and the Python package index ships none), so
the files are made in the test from the format's documented facts with other code than ours: PyNaCl's SecretBox
seals the key, the key derivation is PyNaCl's own scrypt binding (ours uses hashlib's), and the PKCS#8 DER
comes from cryptography."""

import base64
import json
from pathlib import Path

import nacl.bindings
import nacl.pwhash
import nacl.secret
import nacl.utils
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bootstrap.errors import BootstrapError
from bootstrap.sign import keys

N, R, P = 1 << 15, 8, 1
"""cosign's scrypt parameters (2^15 in its older files, 2^16 in newer ones)."""


def cosign_file(key: ec.EllipticCurvePrivateKey, password: bytes, label: str, n: int = N) -> bytes:
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    salt, nonce = nacl.utils.random(32), nacl.utils.random(nacl.secret.SecretBox.NONCE_SIZE)
    secret = nacl.bindings.crypto_pwhash_scryptsalsa208sha256_ll(password, salt, n, R, P, 32, maxmem=1 << 28)
    sealed = nacl.secret.SecretBox(secret).encrypt(der, nonce).ciphertext
    doc = {
        "kdf": {"name": "scrypt", "params": {"N": n, "r": R, "p": P}, "salt": base64.b64encode(salt).decode()},
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    body = base64.b64encode(json.dumps(doc).encode()).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


@pytest.mark.parametrize("label", ["ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY"])
def test_cosign_key_files_are_read(tmp_path: Path, label: str) -> None:
    ours = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "cosign.key"
    path.write_bytes(cosign_file(ours, b"hunter2", label))
    key = keys.load_private(path, lambda: b"hunter2")
    assert key.public.key_id() == keys.PublicKey(ours.public_key()).key_id()
    assert keys.PublicKey(ours.public_key()).verifies(b"m", key.sign(b"m"))
    with pytest.raises(BootstrapError, match="the password does not open this cosign key"):
        keys.load_private(path, lambda: b"hunter3")
    empty = tmp_path / "empty.key"
    empty.write_bytes(cosign_file(ours, b"", label))
    assert keys.load_private(empty, lambda: b"").public.key_id() == key.public.key_id(), "cosign allows no password"


def test_hostile_cosign_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "cosign.key"
    good = cosign_file(ec.generate_private_key(ec.SECP256R1()), b"pw", "ENCRYPTED SIGSTORE PRIVATE KEY")
    body = json.loads(base64.b64decode(b"".join(good.splitlines()[1:-1])))

    def write(doc: dict[str, object]) -> None:
        raw = base64.b64encode(json.dumps(doc).encode())
        path.write_bytes(
            b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
            + raw
            + b"\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
        )

    write({**body, "kdf": {**body["kdf"], "params": {"N": 1 << 30, "r": 8, "p": 1}}})
    with pytest.raises(BootstrapError, match="scrypt parameters out of range"):
        keys.load_private(path, lambda: b"pw")
    write({**body, "cipher": {"name": "aes", "nonce": body["cipher"]["nonce"]}})
    with pytest.raises(BootstrapError, match="not nacl/secretbox"):
        keys.load_private(path, lambda: b"pw")
    sealed = bytearray(base64.b64decode(body["ciphertext"]))
    sealed[-1] ^= 1
    write({**body, "ciphertext": base64.b64encode(bytes(sealed)).decode()})
    with pytest.raises(BootstrapError, match="does not open"):
        keys.load_private(path, lambda: b"pw")
    p384 = cosign_file(ec.generate_private_key(ec.SECP384R1()), b"pw", "ENCRYPTED COSIGN PRIVATE KEY")
    path.write_bytes(p384)
    with pytest.raises(BootstrapError, match="not an ECDSA P-256 key"):
        keys.load_private(path, lambda: b"pw")
