"""CycloneDX 1.6 JSON: the same bill of materials as the SPDX one (`sbom.Component`), for tools that read
CycloneDX. Deterministic: the serial number is derived from the image digest, the timestamp is the epoch."""

import json
import uuid
from collections.abc import Mapping, Sequence

from bootstrap import __version__
from bootstrap.family.model import Notice, Package
from bootstrap.image.oci import rfc3339
from bootstrap.records.sbom import INSECURE_NOTE, Component, ImageInfo, Supplier, components, image_license, purl
from bootstrap.records.system import OperatingSystem

SPEC_VERSION = "1.6"
_NAMESPACE = uuid.UUID("6f0b1f38-5d3e-4c55-9a43-2b1c7f3e9d10")
"""Fixed: serial numbers are uuid5(this, image digest), the same for the same image."""


def _supplier(s: Supplier) -> dict[str, object]:
    out: dict[str, object] = {"name": s.name}
    if s.email:
        out["contact"] = [{"email": s.email}] if "@" in s.email else [{"name": s.email}]
    return out


def _licenses(expression: str | None) -> list[dict[str, object]]:
    return [{"expression": expression}] if expression else []


def _component(system: OperatingSystem, c: Component) -> dict[str, object]:
    pkg = c.package
    ref = purl(system, pkg)
    out: dict[str, object] = {
        "type": "library" if pkg.name.startswith("lib") else "application",
        "bom-ref": ref,
        "name": pkg.name,
        "version": pkg.version,
        "purl": ref,
        "hashes": [{"alg": "SHA-256", "content": pkg.sha256}],
        "externalReferences": [{"type": "distribution", "url": pkg.url}],
        "properties": [{"name": "bootstrap:source-package", "value": pkg.source_name}],
    }
    if c.supplier is not None:
        out["supplier"] = _supplier(c.supplier)
    if c.concluded:
        out["licenses"] = _licenses(c.concluded)
    if c.copyright:
        out["copyright"] = c.copyright
    return out


def make(image: ImageInfo, packages: Sequence[Package], notices: Mapping[str, Notice]) -> bytes:
    """The CycloneDX document for one platform's image."""
    parts = components(image.distro, packages, notices)
    image_ref = f"image:{image.manifest_digest}"
    comps = [_component(image.os, c) for c in parts]
    system = image.os
    os_ref = f"os:{system.distro}"
    os_component: dict[str, object] = {
        "type": "operating-system",
        "bom-ref": os_ref,
        "name": system.id,
        "supplier": _supplier(image.os_supplier),
        **({"version": system.version} if system.version else {}),
        **({"description": system.pretty_name} if system.pretty_name else {}),
    }
    root: dict[str, object] = {
        "type": "container",
        "bom-ref": image_ref,
        "name": image.name,
        "version": image.manifest_digest,
        "purl": image.purl,
        "supplier": _supplier(image.supplier),
        "hashes": [{"alg": "SHA-256", "content": image.manifest_digest.removeprefix("sha256:")}],
        "properties": [
            {"name": "bootstrap:architecture", "value": image.arch},
            *([{"name": "bootstrap:insecure", "value": INSECURE_NOTE}] if image.insecure else []),
        ],
    }
    concluded = image_license(parts)
    if concluded != "NOASSERTION":
        root["licenses"] = os_component["licenses"] = _licenses(concluded)
    doc: dict[str, object] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": f"urn:uuid:{uuid.uuid5(_NAMESPACE, image.manifest_digest)}",
        "version": 1,
        "metadata": {
            "timestamp": rfc3339(image.epoch),
            "lifecycles": [{"phase": "build"}],
            "tools": {"components": [{"type": "application", "name": "bootstrap", "version": __version__}]},
            "component": root,
        },
        "components": [os_component, *comps],
        "dependencies": [
            {"ref": image_ref, "dependsOn": [os_ref]},
            {"ref": os_ref, "dependsOn": [str(c["bom-ref"]) for c in comps]},
            *({"ref": str(c["bom-ref"])} for c in comps),
        ],
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
