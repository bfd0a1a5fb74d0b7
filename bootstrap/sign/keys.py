"""ECDSA P-256 signing keys, as cosign and the containers tools use them: a private key in a PEM file (PKCS#8,
optionally encrypted with a password), its public key as a SubjectPublicKeyInfo PEM file, signatures as DER
ECDSA over SHA-256."""

import getpass
import hashlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from bootstrap.errors import BootstrapError, SignatureError, os_error
from bootstrap.sign import cosign_key

Password = Callable[[], bytes]
"""Asked only when the key file is encrypted: the environment's password, or a prompt."""


@dataclass(frozen=True)
class PublicKey:
    """A P-256 public key: what a policy pins, what a signature is checked against."""

    key: ec.EllipticCurvePublicKey

    def pem(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def key_id(self) -> str:
        """sha256 of the DER SubjectPublicKeyInfo, hex: the `keyid` of a DSSE signature made with it."""
        der = self.key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return hashlib.sha256(der).hexdigest()

    def verifies(self, data: bytes, signature: bytes) -> bool:
        """Whether `signature` (DER ECDSA, SHA-256) over `data` was made by this key's private half."""
        try:
            self.key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A P-256 private key."""

    key: ec.EllipticCurvePrivateKey

    @property
    def public(self) -> PublicKey:
        return PublicKey(self.key.public_key())

    def sign(self, data: bytes) -> bytes:
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def pem(self, password: bytes | None) -> bytes:
        """PKCS#8 PEM, encrypted with `password` when one is given."""
        cipher: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        )
        return self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, cipher)


def generate() -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()))


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise os_error(e, path) from e


def load_private(path: Path, password: Password) -> SigningKey:
    """The signing key in `path` (PKCS#8 or SEC 1 PEM, plain or encrypted, or cosign's encrypted key file)."""
    data = _read(path)
    secret = password() if b"ENCRYPTED" in data else None
    try:
        if secret is not None and cosign_key.is_cosign_key(data):
            key = serialization.load_der_private_key(cosign_key.decrypt(data, secret, str(path)), None)
        else:
            key = serialization.load_pem_private_key(data, secret)
    except (ValueError, TypeError) as e:
        wrong = secret is not None and ("password" in str(e).lower() or "decrypt" in str(e).lower())
        hint = "check the password" if wrong else "give a PEM private key file (bootstrap keygen writes one)"
        raise BootstrapError(f"{path}: not a usable signing key: {e}", hint) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise BootstrapError(f"{path}: not an ECDSA P-256 key", "give a P-256 key (bootstrap keygen writes one)")
    return SigningKey(key)


def load_public(path: Path) -> PublicKey:
    return public_from_pem(_read(path), str(path))


def public_from_pem(data: bytes, where: str) -> PublicKey:
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as e:
        raise SignatureError(f"{where}: not a PEM public key: {e}", "give the .pub file written with the key") from e
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SignatureError(f"{where}: not an ECDSA P-256 public key", "give the .pub file written with the key")
    return PublicKey(key)


PASSWORD_ENV = ("BOOTSTRAP_SIGN_PASSWORD", "COSIGN_PASSWORD")
"""Where the password of an encrypted signing key is read from, in this order (cosign's own variable second)."""


def password_for(path: Path) -> Password:
    """The password of the key in `path`: from the environment, else asked on the terminal, else an error."""

    def ask() -> bytes:
        for name in PASSWORD_ENV:
            if name in os.environ:
                return os.environ[name].encode()
        if not sys.stdin.isatty():
            raise BootstrapError(
                f"{path} is encrypted and no password was given",
                f"set ${PASSWORD_ENV[0]} (or ${PASSWORD_ENV[1]}), or run on a terminal to be asked",
            )
        return getpass.getpass(f"password for {path}: ").encode()

    return ask


def new_password() -> bytes | None:
    """The password to encrypt a new key with: from the environment, else asked twice on a terminal; None (a
    plain key) when neither gives one, or when it is empty."""
    for name in PASSWORD_ENV:
        if name in os.environ:
            return os.environ[name].encode() or None
    if not sys.stdin.isatty():
        return None
    first = getpass.getpass("password for the new key (empty: not encrypted): ")
    if getpass.getpass("the same password again: ") != first:
        raise BootstrapError("the two passwords differ", "run again and type the same password twice")
    return first.encode() or None


def write_pair(prefix: Path, key: SigningKey, password: bytes | None) -> tuple[Path, Path]:
    """Write `PREFIX.key` (mode 0600, encrypted when a password is given) and `PREFIX.pub`, each whole or not at
    all, never over an existing file."""
    private, public = prefix.with_name(prefix.name + ".key"), prefix.with_name(prefix.name + ".pub")
    for path in (private, public):
        if path.exists() or path.is_symlink():
            raise BootstrapError(f"{path} already exists", "choose another --output, or move the old key away")
    _create(private, key.pem(password), 0o600)
    try:
        _create(public, key.public.pem(), 0o644)
    except BaseException:
        private.unlink(missing_ok=True)
        raise
    return private, public


def _create(path: Path, data: bytes, mode: int) -> None:
    """A new file with these bytes: written under a temporary name, then linked to its name (which fails when
    something is there already)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
        with open(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError as e:
        raise BootstrapError(f"{path} already exists", "choose another --output, or move the old key away") from e
    except OSError as e:
        raise os_error(e, path) from e
    finally:
        tmp.unlink(missing_ok=True)
