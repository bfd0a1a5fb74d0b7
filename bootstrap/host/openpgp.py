"""OpenPGP checks with gpgv, for every family: run it on a clearsigned file (an InRelease) or on a file and its
detached signature (an RPM repository's `repomd.xml.asc`), and judge its status lines the way apt does.

gpgv's exit status says too little: it is 0 for a good signature by a revoked or expired key, and non-zero
for a file that carries a good signature beside one by a key we do not have (Debian signs with several keys
across key transitions). So the verdict comes from the `--status-fd` lines: at least one GOODSIG whose key
also gives a VALIDSIG with a strong digest, no BADSIG and no ERROR. Keyrings may be binary or ASCII-armored
(gpgv reads only binary ones: armored ones are decoded into the private scratch directory first).
"""

import base64
import binascii
import hashlib
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bootstrap.errors import SignatureError

WEAK_DIGESTS = {"1": "MD5", "2": "SHA1", "3": "RIPEMD160"}
"""OpenPGP hash algorithm ids (VALIDSIG's eighth field) that no longer vouch for anything."""

_ARMOR_BEGIN = b"-----BEGIN PGP PUBLIC KEY BLOCK-----"
_ARMOR_END = b"-----END PGP PUBLIC KEY BLOCK-----"
_HINT = "check the mirror and --keyring; --insecure skips the check (never for images you ship)"


@dataclass
class Status:
    """What gpgv's status lines say about each signature of one file."""

    good: list[str] = field(default_factory=list)
    """Key ids (or fingerprints) of GOODSIG lines: good signatures by keys that are valid now."""
    valid: dict[str, str] = field(default_factory=dict)
    """Fingerprint of each VALIDSIG -> its digest algorithm id."""
    primary: dict[str, str] = field(default_factory=dict)
    """Fingerprint of each VALIDSIG -> the fingerprint of its primary key."""
    revoked: list[str] = field(default_factory=list)
    expired_key: list[str] = field(default_factory=list)
    expired_sig: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    no_pubkey: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    nodata: bool = False
    keyring_fault: str = ""
    """What gpgv said on stderr about a keyring it could not read (it then finds no key at all)."""

    @classmethod
    def parse(cls, text: str, stderr: str = "") -> "Status":
        status = cls()
        status.keyring_fault = next(
            (line.removeprefix("gpgv: ") for line in stderr.splitlines() if "keydb_search failed" in line), ""
        )
        lists = {
            "GOODSIG": status.good,
            "REVKEYSIG": status.revoked,
            "EXPKEYSIG": status.expired_key,
            "EXPSIG": status.expired_sig,
            "BADSIG": status.bad,
            "NO_PUBKEY": status.no_pubkey,
            "ERROR": status.errors,
        }
        for line in text.splitlines():
            words = line.split()
            if len(words) < 2 or words[0] != "[GNUPG:]":
                continue
            keyword, args = words[1], words[2:]
            if keyword == "NODATA":
                status.nodata = True
            elif keyword == "VALIDSIG" and len(args) >= 8:
                status.valid[args[0].upper()] = args[7]
                status.primary[args[0].upper()] = args[-1].upper()
            elif keyword in lists and args:
                lists[keyword].append(args[0].upper())
        return status

    def _validsig(self, key: str) -> str | None:
        """The fingerprint of the VALIDSIG that belongs to a GOODSIG key id (long id or fingerprint)."""
        return next((fpr for fpr in self.valid if fpr.endswith(key)), None)

    @property
    def trusted(self) -> list[str]:
        """Fingerprints of good signatures by keys valid now, with a strong digest."""
        worthless = {*self.revoked, *self.expired_key, *self.expired_sig}
        out = []
        for key in self.good:
            fpr = self._validsig(key)
            if fpr is not None and key not in worthless and self.valid[fpr] not in WEAK_DIGESTS:
                out.append(fpr)
        return out

    @property
    def primaries(self) -> set[str]:
        """Primary-key fingerprints of the trusted signatures."""
        return {self.primary.get(f, f) for f in self.trusted}

    def refusal(self) -> str | None:
        """Why the file is not to be trusted, or None when it is."""
        if self.nodata:
            return "not signed"
        if self.bad:
            return f"bad signature by key {', '.join(self.bad)}"
        if self.keyring_fault or any(e.startswith(("add_keyblock_resource", "keydb_search")) for e in self.errors):
            return f"a keyring could not be read ({self.keyring_fault or 'missing file'})"
        if self.errors:
            return f"malformed signed file ({self.errors[0]})"
        if self.trusted:
            return None
        if self.revoked:
            return f"signed only by revoked key {', '.join(self.revoked)}"
        if self.expired_key:
            return f"signed only by expired key {', '.join(self.expired_key)}"
        if self.expired_sig:
            return f"signature expired (key {', '.join(self.expired_sig)})"
        weak = [f"{WEAK_DIGESTS[d]} by key {f}" for f, d in self.valid.items() if d in WEAK_DIGESTS]
        if weak:
            return f"signed only with a weak digest ({', '.join(weak)})"
        if self.no_pubkey:
            return f"signed by a key not in the keyring ({', '.join(self.no_pubkey)})"
        return "bad signature"


def dearmor(data: bytes, what: str) -> bytes:
    """The binary packets of every `PUBLIC KEY BLOCK` in an ASCII-armored keyring (RFC 9580 section 6).

    The CRC24 line is skipped, as RFC 9580 asks of readers: gpgv checks the packets themselves.
    """
    out = bytearray()
    rest = data
    while (start := rest.find(_ARMOR_BEGIN)) >= 0:
        end = rest.find(_ARMOR_END, start)
        if end < 0:
            break
        lines = rest[start + len(_ARMOR_BEGIN) : end].strip().splitlines()
        rest = rest[end + len(_ARMOR_END) :]
        body: list[bytes] = []
        in_headers = True
        for raw in lines:
            line = raw.strip()
            if in_headers and (b":" in line or not line):
                in_headers = bool(line)
                continue
            in_headers = False
            if line.startswith(b"="):
                break
            body.append(line)
        try:
            out += base64.b64decode(b"".join(body), validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError(
                f"keyring {what}: malformed ASCII armor", "give a binary keyring or a well-formed .asc file"
            ) from None
    if not out:
        raise SignatureError(f"keyring {what}: no public key block in it", "give an OpenPGP keyring to --keyring")
    return bytes(out)


def _is_armored(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(512).lstrip().startswith(b"-----BEGIN PGP")


def _keyring_args(keyrings: tuple[Path, ...], scratch: Path) -> list[str]:
    """`--keyring` arguments: absolute paths (gpgv reads a bare name inside its home), armored ones decoded."""
    args = []
    for n, ring in enumerate(keyrings):
        try:
            armored = _is_armored(ring)
        except OSError as exc:
            raise SignatureError(f"cannot read keyring {ring}: {exc.strerror}", _HINT) from None
        if armored:
            binary = scratch / f"keyring-{n}.gpg"
            binary.write_bytes(dearmor(ring.read_bytes(), str(ring)))
            ring = binary
        args += ["--keyring", str(ring.absolute())]
    return args


def _packets(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, body) of each OpenPGP packet (RFC 9580 section 4.2: old and new header formats)."""
    out = []
    pos = 0
    while pos < len(data):
        head = data[pos]
        if not head & 0x80:
            break
        if head & 0x40:
            tag = head & 0x3F
            first = data[pos + 1]
            if first < 192:
                length, pos = first, pos + 2
            elif first < 224:
                length, pos = ((first - 192) << 8) + data[pos + 2] + 192, pos + 3
            elif first == 255:
                length, pos = int.from_bytes(data[pos + 2 : pos + 6], "big"), pos + 6
            else:
                break  # partial lengths never occur in keys
        else:
            tag = (head >> 2) & 0x0F
            size = {0: 1, 1: 2, 2: 4}.get(head & 3)
            if size is None:
                break
            length, pos = int.from_bytes(data[pos + 1 : pos + 1 + size], "big"), pos + 1 + size
        out.append((tag, data[pos : pos + length]))
        pos += length
    return out


def _v4_fingerprint(body: bytes) -> str:
    return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body, usedforsecurity=False).hexdigest().upper()


def _binary(keyring: Path) -> bytes:
    data = keyring.read_bytes()
    return dearmor(data, str(keyring)) if _is_armored(keyring) else data


def extract_key(keyring: Path, fingerprint: str) -> bytes:
    """The one key (with its user ids, signatures and subkeys) of a keyring that has `fingerprint`, as a
    binary keyring of its own; empty when there is none."""
    keys: list[list[tuple[int, bytes]]] = []
    for tag, body in _packets(_binary(keyring)):
        if tag == 6 or not keys:
            keys.append([])
        keys[-1].append((tag, body))
    for packets in keys:
        if any(tag in (6, 14) and _v4_fingerprint(body) == fingerprint for tag, body in packets):
            return b"".join(_header(tag, body) + body for tag, body in packets)
    return b""


def _header(tag: int, body: bytes) -> bytes:
    """A new-format packet header with a five-octet length."""
    return bytes([0xC0 | tag, 255]) + len(body).to_bytes(4, "big")


def fingerprints(keyring: Path) -> set[str]:
    """Fingerprints (upper-case hex) of the v4 primary keys and subkeys in a binary or armored keyring."""
    return {_v4_fingerprint(body) for tag, body in _packets(_binary(keyring)) if tag in (6, 14) and body[:1] == b"\x04"}


def _gpgv(args: list[str], scratch: Path, keyrings: tuple[Path, ...], what: str, signers: frozenset[str]) -> Status:
    """Run gpgv on `args` (the signed files, inside `scratch`) and refuse what its status lines do not vouch for."""
    cmd = ["gpgv", "--status-fd", "1", *_keyring_args(keyrings, scratch), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, env={**os.environ, "GNUPGHOME": str(scratch), "LC_ALL": "C"})
    except FileNotFoundError:
        raise SignatureError("gpgv is not installed", "apt-get install gpgv") from None
    status = Status.parse(proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
    reason = status.refusal()
    if reason is None and signers and not signers & {*status.trusted, *status.primaries}:
        reason = f"not signed by the key the recipe names ({', '.join(sorted(signers))})"
    if reason is not None:
        raise SignatureError(f"{what}: {reason} (keyring: {', '.join(str(k) for k in keyrings)})", _HINT)
    return status


def verify_clearsigned(
    data: bytes, keyrings: tuple[Path, ...], what: str, signers: frozenset[str] = frozenset()
) -> bytes:
    """Return the text gpgv vouches for: only the signed part, never what surrounds it. With `signers`, a good
    signature must also come from one of these keys (fingerprints of primary keys or subkeys)."""
    if b"BEGIN PGP SIGNED MESSAGE" not in data:
        raise SignatureError(f"{what}: not signed (keyring: {', '.join(str(k) for k in keyrings)})", _HINT)
    with tempfile.TemporaryDirectory(prefix="bootstrap-gpgv-") as tmp:
        scratch = Path(tmp)
        signed = scratch / "InRelease"
        signed.write_bytes(data)
        out = scratch / "Release"
        _gpgv(["--output", str(out), str(signed)], scratch, keyrings, what, signers)
        if not out.is_file():
            raise SignatureError(f"{what}: gpgv wrote no signed text", _HINT)
        return out.read_bytes()


def verify_detached(
    data: bytes, signature: bytes, keyrings: tuple[Path, ...], what: str, signers: frozenset[str] = frozenset()
) -> list[str]:
    """Check `signature` (binary or armored, detached) over `data`, as `verify_clearsigned` judges it; return the
    fingerprints of the keys whose good signatures vouch for it."""
    with tempfile.TemporaryDirectory(prefix="bootstrap-gpgv-") as tmp:
        scratch = Path(tmp)
        (scratch / "data").write_bytes(data)
        (scratch / "data.sig").write_bytes(signature)
        status = _gpgv([str(scratch / "data.sig"), str(scratch / "data")], scratch, keyrings, what, signers)
        return status.trusted
