"""SPDX 3.0.1 JSON-LD: the same bill of materials as the SPDX 2.3 one (`sbom.Component`), in the form that has
a field for the SBOM type (`software_Sbom.software_sbomType`, `build`), which CISA's framing asks for."""

import json
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Any

from bootstrap import __version__
from bootstrap.family.model import Notice, Package
from bootstrap.image.oci import rfc3339
from bootstrap.records.sbom import (
    IMAGE_COPYRIGHT,
    INSECURE_NOTE,
    ImageInfo,
    Supplier,
    components,
    download_location,
    image_license,
    purl,
)

CONTEXT = "https://spdx.org/rdf/3.0.1/spdx-context.jsonld"
CREATION = "_:creationinfo"


class _Graph:
    def __init__(self, base: str) -> None:
        self.base = base
        self.nodes: list[dict[str, Any]] = []
        self.ids: set[str] = set()

    def element(self, kind: str, local: str, **props: Any) -> str:
        spdx_id = f"{self.base}#{urllib.parse.quote(local, safe='')}"
        if spdx_id not in self.ids:
            self.ids.add(spdx_id)
            self.nodes.append({"type": kind, "spdxId": spdx_id, "creationInfo": CREATION, **props})
        return spdx_id

    def relate(self, source: str, kind: str, targets: Sequence[str]) -> None:
        local = f"rel-{kind}-{source.rsplit('#', 1)[1]}-{len(self.nodes)}"
        self.element("Relationship", local, **{"from": source, "relationshipType": kind, "to": list(targets)})

    def agent(self, who: Supplier) -> str:
        props: dict[str, Any] = {"name": who.name}
        if who.email:
            props["externalIdentifier"] = [
                {"type": "ExternalIdentifier", "externalIdentifierType": "email", "identifier": who.email}
            ]
        return self.element("Organization" if who.organization else "Person", f"agent-{who.name}-{who.email}", **props)

    def license(self, expression: str, texts: Mapping[str, tuple[str, str]]) -> str:
        props: dict[str, Any] = {"simplelicensing_licenseExpression": expression}
        refs = [ref for ref in texts if ref in expression.split()]
        if refs:
            props["simplelicensing_customIdToUri"] = [
                {
                    "type": "DictionaryEntry",
                    "key": ref,
                    "value": self.element(
                        "simplelicensing_SimpleLicensingText",
                        f"text-{ref}",
                        name=texts[ref][0],
                        simplelicensing_licenseText=texts[ref][1],
                    ),
                }
                for ref in refs
            ]
        return self.element("simplelicensing_LicenseExpression", f"license-{expression}", **props)


def _purl_id(locator: str) -> dict[str, str]:
    return {"type": "ExternalIdentifier", "externalIdentifierType": "packageUrl", "identifier": locator}


def make(image: ImageInfo, packages: Sequence[Package], notices: Mapping[str, Notice]) -> bytes:
    """The SPDX 3 document for one platform's image; deterministic."""
    parts = components(image.distro, packages, notices)
    base = f"{image.base_url}/spdx3/{urllib.parse.quote(image.name, safe='')}/{image.manifest_digest[7:]}"
    g = _Graph(base)
    tool_agent = g.element("SoftwareAgent", "bootstrap", name=f"bootstrap-{__version__}")
    tool = g.element("Tool", "tool", name=f"bootstrap-{__version__}")
    texts = {ref: v for c in parts for ref, v in c.extracted.items()}
    image_id = g.element(
        "software_Package",
        "image",
        name=image.name,
        software_packageVersion=image.manifest_digest,
        software_primaryPurpose="container",
        software_packageUrl=image.purl,
        externalIdentifier=[_purl_id(image.purl)],
        software_copyrightText=IMAGE_COPYRIGHT,
        suppliedBy=g.agent(image.supplier),
        verifiedUsing=[{"type": "Hash", "algorithm": "sha256", "hashValue": image.manifest_digest[7:]}],
        **({"comment": INSECURE_NOTE} if image.insecure else {}),
    )
    concluded = image_license(parts)
    if concluded != "NOASSERTION":
        g.relate(image_id, "hasConcludedLicense", [g.license(concluded, texts)])
    system = image.os
    os_id = g.element(
        "software_Package",
        "operating-system",
        name=system.id,
        software_primaryPurpose="operatingSystem",
        software_copyrightText=IMAGE_COPYRIGHT,
        suppliedBy=g.agent(image.os_supplier),
        **({"software_packageVersion": system.version} if system.version else {}),
        **({"description": system.pretty_name} if system.pretty_name else {}),
    )
    if concluded != "NOASSERTION":
        g.relate(os_id, "hasConcludedLicense", [g.license(concluded, texts)])
    g.relate(image_id, "contains", [os_id])
    contained = []
    for c in parts:
        pkg = c.package
        props_purl = purl(system, pkg)
        props: dict[str, Any] = {
            "name": pkg.name,
            "software_packageVersion": pkg.version,
            "software_packageUrl": props_purl,
            "software_primaryPurpose": "library" if pkg.name.startswith("lib") else "application",
            "software_sourceInfo": f"built from the {pkg.source_name} source package",
            "verifiedUsing": [{"type": "Hash", "algorithm": "sha256", "hashValue": pkg.sha256}],
            "externalIdentifier": [_purl_id(props_purl)],
        }
        location = download_location(pkg.url)
        if location != "NOASSERTION":
            props["software_downloadLocation"] = location
        if c.copyright:
            props["software_copyrightText"] = c.copyright
        if c.supplier is not None:
            props["suppliedBy"] = g.agent(c.supplier)
        pkg_id = g.element("software_Package", f"{pkg.purl_type}-{pkg.name}", **props)
        contained.append(pkg_id)
        if c.concluded:
            g.relate(pkg_id, "hasConcludedLicense", [g.license(c.concluded, texts)])
        if c.declared:
            g.relate(pkg_id, "hasDeclaredLicense", [g.license(" AND ".join(c.declared), texts)])
    if contained:
        g.relate(os_id, "contains", contained)
    members = sorted(g.ids - {tool_agent, tool})
    sbom_id = g.element(
        "software_Sbom", "sbom", name=image.name, software_sbomType=["build"], rootElement=[image_id], element=members
    )
    g.element(
        "SpdxDocument",
        "document",
        name=image.name,
        rootElement=[sbom_id],
        element=sorted(g.ids - {f"{base}#document"}),
        profileConformance=["core", "software", "simpleLicensing"],
    )
    creation = {
        "type": "CreationInfo",
        "@id": CREATION,
        "specVersion": "3.0.1",
        "created": rfc3339(image.epoch),
        "createdBy": [tool_agent],
        "createdUsing": [tool],
    }
    doc = {"@context": CONTEXT, "@graph": [creation, *g.nodes]}
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
