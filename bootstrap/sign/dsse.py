"""DSSE envelopes (Dead Simple Signing Envelope, v1): a payload, its type, and signatures over the
pre-authentication encoding (PAE) of both, as in-toto attestations and `cosign verify-attestation` use them."""

import base64
import binascii
import json
from typing import TYPE_CHECKING, Any

from bootstrap.errors import SignatureError

if TYPE_CHECKING:  # the keys' module loads cryptography: only a build that signs needs it
    from bootstrap.sign.keys import PublicKey, SigningKey

PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""The payload type of an in-toto Statement."""
MEDIA_TYPE = "application/vnd.dsse.envelope.v1+json"
"""The media type of an envelope file (and of the artifact attached to an image)."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """What is signed: `DSSEv1 <len(type)> <type> <len(payload)> <payload>`, lengths in ASCII decimal bytes."""
    kind = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def sign(payload: bytes, key: "SigningKey", payload_type: str = PAYLOAD_TYPE) -> bytes:
    """The envelope (JSON, one line and a newline) of `payload` signed with `key`."""
    signature = {"keyid": key.public.key_id(), "sig": base64.b64encode(key.sign(pae(payload_type, payload))).decode()}
    doc = {"payload": base64.b64encode(payload).decode(), "payloadType": payload_type, "signatures": [signature]}
    return (json.dumps(doc, sort_keys=True) + "\n").encode()


_CHANGED = "the envelope was changed: get it again"


def _field(doc: dict[str, Any], name: str, where: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str):
        raise SignatureError(f"{where}: not a DSSE envelope (no {name})", "give the envelope the signed build wrote")
    return value


def _b64(text: str, what: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError(f"{where}: the {what} is not base64", _CHANGED) from None


def open_envelope(data: bytes, key: "PublicKey", where: str, payload_type: str = PAYLOAD_TYPE) -> bytes:
    """The payload of the envelope `data` when one of its signatures is `key`'s over it; else a SignatureError
    saying why (another key, a changed payload or signature, not an envelope)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise SignatureError(f"{where}: not a DSSE envelope (not JSON)", _CHANGED) from None
    if not isinstance(doc, dict):
        raise SignatureError(f"{where}: not a DSSE envelope", _CHANGED)
    kind = _field(doc, "payloadType", where)
    if kind != payload_type:
        raise SignatureError(f"{where}: payload type {kind!r}, not {payload_type!r}", "give an in-toto attestation")
    payload = _b64(_field(doc, "payload", where), "payload", where)
    signatures = doc.get("signatures")
    if not isinstance(signatures, list) or not signatures:
        raise SignatureError(f"{where}: the envelope holds no signature", "sign the build (--sign-key)")
    signed = pae(kind, payload)
    ours = key.key_id()
    ids = []
    for entry in signatures:
        if not isinstance(entry, dict) or not isinstance(entry.get("sig"), str):
            continue
        ids.append(str(entry.get("keyid") or "?"))
        if key.verifies(signed, _b64(entry["sig"], "signature", where)):
            return payload
    if ours in ids:
        raise SignatureError(
            f"{where}: the signature of key {ours[:16]} does not match the payload",
            "the record or its envelope was changed after signing: get them again",
        )
    raise SignatureError(
        f"{where}: signed by another key ({', '.join(i[:16] for i in ids) or 'none named'}), not {ours[:16]}",
        "check --key: it must be the public key of the --sign-key the build was signed with",
    )
