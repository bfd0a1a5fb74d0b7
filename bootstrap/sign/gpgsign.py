"""GPG "simple signing", the signature a containers `signedBy` policy checks: an OpenPGP signed message (gpg
--sign, not detached) over a payload naming the image by its full reference (with the tag: the default
`matchRepoDigestOrExact` identity compares it with the reference pulled) and its manifest digest.

Registries like Docker's have no API for these signatures, so they live in a "lookaside" store: files
`<repository>@sha256=<hex>/signature-<n>` (n from 1) under a directory served over HTTP(S) or read as
`file://`, which containers-registries.d(5) names with `lookaside:`. The key is the user's, in gpg's keyring
($GNUPGHOME); gpg and its agent ask for a passphrase if it has one.
"""

import subprocess
from pathlib import Path

from bootstrap.errors import BootstrapError, SignatureError
from bootstrap.sign import simplesigning

TYPE = "atomic container signature"


def payload(docker_reference: str, digest: str) -> bytes:
    """The payload for the manifest `digest` pushed as `docker_reference` (HOST[:PORT]/REPO:TAG): sorted keys,
    no spaces, `optional` empty (no creator, no timestamp)."""
    return simplesigning.document(docker_reference, digest, TYPE, {})


def _gpg(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["gpg", "--batch", "--no-tty", *args], input=stdin, capture_output=True, check=False)
    except OSError as e:
        raise BootstrapError(f"cannot run gpg: {e}", "install gnupg (apt-get install gpg)") from e


def fingerprint(key: str) -> str:
    """The fingerprint of the secret key gpg finds for `key` (a fingerprint, key id or user id)."""
    proc = _gpg("--with-colons", "--list-secret-keys", "--", key)
    found = [
        line.split(":")[9] for line in proc.stdout.decode(errors="replace").splitlines() if line.startswith("fpr:")
    ]
    if proc.returncode != 0 or not found:
        raise SignatureError(f"gpg has no secret key {key!r}", "list them with `gpg --list-secret-keys`")
    return found[0]


def sign(key_fingerprint: str, data: bytes) -> bytes:
    proc = _gpg("--local-user", key_fingerprint, "--sign", "--output", "-", stdin=data)
    if proc.returncode != 0 or not proc.stdout:
        why = proc.stderr.decode(errors="replace").strip().splitlines()
        raise SignatureError(f"gpg could not sign with {key_fingerprint}: {why[-1] if why else 'no output'}", "")
    return proc.stdout


def signer_of(signature: bytes) -> tuple[str, bytes] | None:
    """(fingerprint of the primary key, payload) of a valid signed message whose key gpg has; else None."""
    proc = _gpg("--status-fd", "2", "--decrypt", stdin=signature)
    for line in proc.stderr.decode(errors="replace").splitlines():
        fields = line.split()
        if fields[:2] == ["[GNUPG:]", "VALIDSIG"] and proc.returncode == 0:
            return fields[-1], proc.stdout
    return None


def store(lookaside: Path, repository: str, digest: str, key_fingerprint: str, docker_reference: str) -> bool:
    """Write the signature of `digest` to the lookaside directory as the next `signature-<n>`; False (nothing
    written) when one by this key of this payload is there already."""
    data = payload(docker_reference, digest)
    directory = lookaside / f"{repository}@{digest.replace(':', '=')}"
    n = 1
    while (directory / f"signature-{n}").exists():
        if signer_of((directory / f"signature-{n}").read_bytes()) == (key_fingerprint, data):
            return False
        n += 1
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".signature-{n}.tmp"
    tmp.write_bytes(sign(key_fingerprint, data))
    tmp.rename(directory / f"signature-{n}")
    return True


class GpgSigner:
    """A gpg key (resolved to its fingerprint) and the lookaside directory its signatures go to."""

    def __init__(self, key: str, lookaside: Path) -> None:
        self.fingerprint = fingerprint(key)
        self.lookaside = lookaside

    def sign_all(self, repository: str, docker_reference: str, digests: list[str]) -> int:
        """Sign each digest pushed as `docker_reference`; returns how many signatures were new."""
        return sum(store(self.lookaside, repository, d, self.fingerprint, docker_reference) for d in digests)
