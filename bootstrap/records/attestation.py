"""The SBOMs as in-toto Statements (v1) about the image they describe, the payloads of their signed envelopes
(the provenance is a Statement already and is signed as it is)."""

import json

from bootstrap.records.provenance import STATEMENT_TYPE

SPDX_PREDICATE = "https://spdx.dev/Document"
CYCLONEDX_PREDICATE = "https://cyclonedx.org/bom"


def sbom_statement(sbom: bytes, predicate_type: str, image: str, manifest_digest: str) -> bytes:
    """A Statement whose subject is the image's manifest (by digest) and whose predicate is the SBOM."""
    algo, _, value = manifest_digest.partition(":")
    doc = {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": image, "digest": {algo: value}}],
        "predicateType": predicate_type,
        "predicate": json.loads(sbom),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
