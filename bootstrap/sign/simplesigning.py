"""The container image signature that podman, skopeo and cosign check with a `sigstoreSigned` policy: a
"simple signing" payload naming the image's repository and manifest digest, signed (ECDSA P-256, SHA-256)
over its exact bytes.

The payload is a JSON object of exactly two members: `critical` (exactly `identity` with `docker-reference`,
`image` with `docker-manifest-digest`, and `type`, the constant below) and `optional` (null here: no
timestamp, no creator, so the bytes depend on the repository and the digest alone). containers/image refuses
any other field set in `critical`; it compares `docker-reference` with the pulled image's repository under a
`matchRepository` identity and the manifest digest with the pulled manifest's sha256.
"""

import base64
import json
import re
from dataclasses import dataclass
from typing import Any

from bootstrap.errors import SignatureError
from bootstrap.sign.keys import PublicKey, SigningKey

TYPE = "cosign container image signature"
MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
"""The media type of a layer holding a payload in a signature manifest."""
ANNOTATION = "dev.cosignproject.cosign/signature"
"""The layer annotation holding the base64 of the DER signature over that layer's payload."""

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def payload(docker_reference: str, digest: str) -> bytes:
    """The payload bytes for the manifest `digest` in the repository `docker_reference` (HOST[:PORT]/REPO):
    keys sorted, no spaces, as cosign writes it."""
    return document(docker_reference, digest, TYPE, None)


def document(docker_reference: str, digest: str, kind: str, optional: dict[str, Any] | None) -> bytes:
    """A simple signing payload of type `kind` (the cosign one, or GPG's `gpgsign.TYPE`)."""
    if not _DIGEST.match(digest):
        raise SignatureError(f"{digest!r} is not a sha256 manifest digest", "sign a pushed manifest's digest")
    doc = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": digest},
            "type": kind,
        },
        "optional": optional,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Signed:
    """A payload and the base64 of the signature over it: one layer of a signature manifest."""

    payload: bytes
    signature: str

    def verified_by(self, key: PublicKey) -> bool:
        try:
            raw = base64.b64decode(self.signature, validate=True)
        except ValueError:
            return False
        return key.verifies(self.payload, raw)


def sign(key: SigningKey, docker_reference: str, digest: str) -> Signed:
    data = payload(docker_reference, digest)
    return Signed(data, base64.b64encode(key.sign(data)).decode())


def claims(data: bytes) -> tuple[str, str]:
    """The (docker-reference, manifest digest) a payload vouches for, read as strictly as containers/image does:
    exactly the fields above, the type constant, strings where strings belong."""
    try:
        doc: Any = json.loads(data)
        critical = doc["critical"]
        if set(doc) != {"critical", "optional"} or set(critical) != {"identity", "image", "type"}:
            raise ValueError("unexpected fields")
        if critical["type"] != TYPE:
            raise ValueError(f"type {critical['type']!r}")
        reference = critical["identity"]["docker-reference"]
        digest = critical["image"]["docker-manifest-digest"]
        if set(critical["identity"]) != {"docker-reference"} or set(critical["image"]) != {"docker-manifest-digest"}:
            raise ValueError("unexpected fields")
        if not isinstance(reference, str) or not isinstance(digest, str) or not _DIGEST.match(digest):
            raise ValueError("reference or digest is not a string")
    except (ValueError, KeyError, TypeError) as e:
        raise SignatureError(f"not a simple signing payload: {e}", "the signature was not made by bootstrap") from e
    return reference, digest
