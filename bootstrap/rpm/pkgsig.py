"""Checking a downloaded .rpm before anything of it is used: its OpenPGP header signature against the pinned keys
(by gpgv, judged as repomd.xml and InRelease are, full fingerprints), and its payload against the digest the
signed header gives. rpm's own check (`rpmkeys --checksig`) names keys by short id only and needs rpm on the
host; this one reads the two headers it needs and pins whole fingerprints."""

import hashlib
from pathlib import Path

from bootstrap.errors import SignatureError
from bootstrap.host import openpgp
from bootstrap.rpm import tags
from bootstrap.rpm.header import Layout, read_layout
from bootstrap.rpm.packages import Package, nevra

SIG_DSA, SIG_RSA = 267, 268
"""Signature header tags of the header-only OpenPGP signatures (DSA/ECDSA/EdDSA, RSA)."""
SIG_LEGACY = (1002, 1005)
"""Header-and-payload signatures of old rpm (PGP, GPG): not accepted alone."""
PAYLOAD_DIGEST, PAYLOAD_DIGEST_ALGO, PAYLOAD_DIGEST_ALT = 5092, 5093, 5097
"""The signed header's digests of the payload as stored (compressed) and uncompressed (ALT, rpm 4.16 and later),
in the algorithm PAYLOADDIGESTALGO names."""
DIGESTS = {8: "sha256", 9: "sha384", 10: "sha512"}
"""OpenPGP hash algorithm ids rpm writes in PAYLOADDIGESTALGO, strong ones only."""
CHUNK = 1 << 20
_HINT = "the package is not the distribution's (or was changed): check the mirror and the recipe's keys"


def verify(path: Path, keyrings: tuple[Path, ...], what: str, signers: frozenset[str] = frozenset()) -> Layout:
    """Check `path` and return where its parts are; SignatureError when it is not signed by a pinned key or its
    payload is not what the signed header says."""
    with open(path, "rb") as f:
        layout = read_layout(f, what)
        signatures = [s for tag in (SIG_RSA, SIG_DSA) if (s := layout.signature.binary(tag)) is not None]
        if not signatures:
            legacy = any(tag in layout.signature.index for tag in SIG_LEGACY)
            why = "only an old header-and-payload signature" if legacy else "not signed"
            raise SignatureError(f"{what}: {why}", _HINT)
        f.seek(layout.main.start)
        signed = f.read(layout.main.end - layout.main.start)
        for signature in signatures:
            openpgp.verify_detached(signed, signature, keyrings, what, signers)
        algo = layout.main.int32(PAYLOAD_DIGEST_ALGO)
        expected = layout.main.strings(PAYLOAD_DIGEST)
        if not expected or not algo:
            raise SignatureError(f"{what}: its signed header gives no payload digest", "the package is too old")
        if algo[0] not in DIGESTS:
            raise SignatureError(f"{what}: payload digest algorithm {algo[0]} is not a strong one", _HINT)
        digest = hashlib.new(DIGESTS[algo[0]])
        f.seek(layout.payload)
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != expected[0].lower():
        raise SignatureError(f"{what}: the payload does not match the digest in its signed header", _HINT)
    return layout


def header_nevra(layout: Layout) -> str:
    """name-epoch:version-release.arch as the package's signed header gives it (the epoch 0 when it has none)."""
    h = layout.main
    epoch = h.int32(tags.EPOCH)
    name, version, release, arch = (h.string(t) for t in (tags.NAME, tags.VERSION, tags.RELEASE, tags.ARCH))
    return nevra(name, epoch[0] if epoch else 0, version, release, arch)


def check_names(layout: Layout, record: Package, what: str) -> None:
    """Refuse a package whose signed header is not the package the repository's record names: the lock, the
    SBOMs and the resolver take the record's name and version, the image gets the header's (a mirror whose
    metadata no key vouches for could otherwise hand out an older signed build under a newer record)."""
    found = header_nevra(layout)
    if found != record.nevra:
        raise SignatureError(
            f"{what}: the package file is {found}, but the repository's metadata names {record.nevra}",
            "the mirror serves another package than its metadata names: use another mirror",
        )
