"""Signing keys and signatures: ECDSA P-256 keys (`keys`), the envelopes and payloads made with them."""
