"""DSSE envelopes: made with our keys, checked by us and by an independent implementation (securesystemslib),
and hostile envelopes (another key, a changed payload or signature) refused."""

import base64
import json

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError
from securesystemslib.signer import SSlibKey

from bootstrap.errors import SignatureError
from bootstrap.sign import dsse, keys


def _theirs(public: keys.PublicKey, keyid: str | None = None) -> SSlibKey:
    """Our public key as securesystemslib reads it from its PEM, under the key id our envelopes name."""
    return SSlibKey.from_crypto(load_pem_public_key(public.pem()), keyid=keyid or public.key_id())


def test_pae_is_the_specs_encoding() -> None:
    assert dsse.pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert dsse.pae("", b"") == b"DSSEv1 0  0 "


def test_an_envelope_verifies_with_securesystemslib_and_with_us() -> None:
    key = keys.generate()
    payload = json.dumps({"_type": "https://in-toto.io/Statement/v1", "x": "é"}).encode()
    data = dsse.sign(payload, key)
    envelope = Envelope.from_dict(json.loads(data))
    assert envelope.payload_type == dsse.PAYLOAD_TYPE and envelope.payload == payload
    assert list(envelope.verify([_theirs(key.public)], 1)) == [key.public.key_id()]
    assert dsse.open_envelope(data, key.public, "env") == payload
    other = keys.generate()
    with pytest.raises(VerificationError):
        envelope.verify([_theirs(other.public, key.public.key_id())], 1)


def _changed(data: bytes, field: str, change: bytes) -> bytes:
    doc = json.loads(data)
    target = doc if field == "payload" else doc["signatures"][0]
    name = "payload" if field == "payload" else "sig"
    raw = bytearray(base64.b64decode(target[name]))
    raw[len(raw) // 2] ^= change[0]
    target[name] = base64.b64encode(bytes(raw)).decode()
    return json.dumps(doc).encode()


def test_hostile_envelopes_are_refused_in_one_line() -> None:
    key, other = keys.generate(), keys.generate()
    data = dsse.sign(b'{"a": 1}', key)
    with pytest.raises(SignatureError, match="signed by another key") as by_other:
        dsse.open_envelope(data, other.public, "env")
    assert "\n" not in by_other.value.message
    flipped = _changed(data, "payload", b"\x01")
    with pytest.raises(SignatureError, match="does not match the payload"):
        dsse.open_envelope(flipped, key.public, "env")
    with pytest.raises(VerificationError):
        Envelope.from_dict(json.loads(flipped)).verify([_theirs(key.public)], 1)
    with pytest.raises(SignatureError, match="does not match the payload"):
        dsse.open_envelope(_changed(data, "sig", b"\x01"), key.public, "env")
    with pytest.raises(SignatureError, match="not a DSSE envelope"):
        dsse.open_envelope(b"[1]", key.public, "env")
    with pytest.raises(SignatureError, match="payload type"):
        dsse.open_envelope(dsse.sign(b"{}", key, "text/plain"), key.public, "env")
    unsigned = json.dumps({**json.loads(data), "signatures": []}).encode()
    with pytest.raises(SignatureError, match="holds no signature"):
        dsse.open_envelope(unsigned, key.public, "env")
