"""cosign's own encrypted private key files: a PEM block (`ENCRYPTED SIGSTORE PRIVATE KEY`, or
`ENCRYPTED COSIGN PRIVATE KEY` from older cosign) whose body is a JSON document: the password stretched by
scrypt (its N, r, p and salt given), the key sealed with NaCl secretbox (XSalsa20-Poly1305, its nonce given),
and the plaintext a PKCS#8 DER private key."""

import base64
import binascii
import hashlib
import json
import re
from typing import Any

import nacl.exceptions
import nacl.secret

from bootstrap.errors import BootstrapError

LABELS = ("ENCRYPTED SIGSTORE PRIVATE KEY", "ENCRYPTED COSIGN PRIVATE KEY")
_BLOCK = re.compile(rb"-----BEGIN (" + b"|".join(x.encode() for x in LABELS) + rb")-----(.*?)-----END \1-----", re.S)
MAX_SCRYPT_N = 1 << 20
"""A larger cost is refused: cosign writes 2^15 or 2^16, and a hostile file must not make us spend gigabytes."""


def is_cosign_key(data: bytes) -> bool:
    return _BLOCK.search(data) is not None


def _b64(doc: dict[str, Any], *path: str) -> bytes:
    value: Any = doc
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    if not isinstance(value, str):
        raise ValueError(f"no {'.'.join(path)}")
    return base64.b64decode(value, validate=True)


def _params(doc: dict[str, Any]) -> tuple[int, int, int]:
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        raise ValueError("the key derivation is not scrypt")
    params = kdf.get("params")
    if not isinstance(params, dict):
        raise ValueError("no scrypt parameters")
    n, r, p = (params.get(k) for k in ("N", "r", "p"))
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (n, r, p)):
        raise ValueError("scrypt parameters are not positive integers")
    assert isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
    if n > MAX_SCRYPT_N or n & (n - 1) or r * p >= 1 << 30:
        raise ValueError(f"scrypt parameters out of range (N={n}, r={r}, p={p})")
    return n, r, p


def decrypt(data: bytes, password: bytes, where: str) -> bytes:
    """The PKCS#8 DER private key sealed in cosign's key file `data`."""
    found = _BLOCK.search(data)
    if found is None:
        raise BootstrapError(f"{where}: not a cosign key file", "give a cosign.key file")
    hint = "give a key file written by `cosign generate-key-pair` (or `bootstrap keygen`)"
    try:
        doc = json.loads(base64.b64decode(b"".join(found.group(2).split()), validate=True))
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        n, r, p = _params(doc)
        if (doc.get("cipher") or {}).get("name") != "nacl/secretbox":
            raise ValueError("the cipher is not nacl/secretbox")
        salt, nonce, sealed = _b64(doc, "kdf", "salt"), _b64(doc, "cipher", "nonce"), _b64(doc, "ciphertext")
        if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
            raise ValueError("the nonce is not 24 bytes")
    except (ValueError, binascii.Error) as e:
        raise BootstrapError(f"{where}: not a readable cosign key file: {e}", hint) from None
    secret = hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=32, maxmem=256 * n * r * p + (1 << 20))
    try:
        return nacl.secret.SecretBox(secret).decrypt(sealed, nonce)
    except nacl.exceptions.CryptoError:
        raise BootstrapError(f"{where}: the password does not open this cosign key", "check the password") from None
