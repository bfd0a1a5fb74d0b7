"""SPDX 2.3 JSON software bill of materials: the image, and one package per installed .deb."""

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bootstrap import __version__
from bootstrap.deb.copyright import license_ref, spdx_id
from bootstrap.deb.index import Package
from bootstrap.image.oci import rfc3339


@dataclass(frozen=True)
class ImageInfo:
    name: str
    distro: str
    arch: str
    epoch: int
    manifest_digest: str
    insecure: bool = False
    """Built with --insecure: said in a document comment and an annotation."""


INSECURE_NOTE = (
    "INSECURE BUILD: made with --insecure, so no archive signature was checked and nothing vouches for "
    "where these packages came from."
)


def purl(distro: str, pkg: Package) -> str:
    """`pkg:deb/<distro>/<name>@<version>?arch=<arch>`, percent-encoded as the purl spec requires."""
    version = urllib.parse.quote(pkg.version, safe="")
    return f"pkg:deb/{distro}/{urllib.parse.quote(pkg.name, safe='')}@{version}?arch={pkg.arch}"


# SPDX 2.3's grammar for a download location's host wants a domain name ending in a top-level domain.
_SPDX_URL = re.compile(r"^(https?|ftp)://[a-z0-9]+([\-.][a-z0-9]+)*\.[a-z]{2,5}(:[0-9]{1,5})?(/.*)?$", re.IGNORECASE)


def download_location(url: str) -> str:
    """The URL where SPDX's grammar accepts it (not for IP addresses or one-label hosts), else NOASSERTION."""
    return url if _SPDX_URL.match(url) else "NOASSERTION"


def _spdx_ref(kind: str, name: str) -> str:
    return f"SPDXRef-{kind}-" + re.sub(r"[^A-Za-z0-9.\-]", "-", name)


def make(image: ImageInfo, packages: Sequence[Package], licenses: Mapping[str, Sequence[str]]) -> bytes:
    """The SBOM document; deterministic for a given image."""
    image_id = _spdx_ref("Image", image.name)
    extracted: dict[str, str] = {}
    spdx_packages: list[dict[str, object]] = [
        {
            "SPDXID": image_id,
            "name": image.name,
            "versionInfo": image.manifest_digest,
            "primaryPackagePurpose": "CONTAINER",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "checksums": [{"algorithm": "SHA256", "checksumValue": image.manifest_digest.removeprefix("sha256:")}],
        }
    ]
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id}
    ]
    for pkg in packages:
        ids = sorted({spdx_id(name) for name in licenses.get(pkg.name, ())})
        for name in licenses.get(pkg.name, ()):
            ref = spdx_id(name)
            if ref.startswith("LicenseRef-"):
                extracted[ref] = name
        pkg_id = _spdx_ref("Package-deb", pkg.name)
        spdx_packages.append(
            {
                "SPDXID": pkg_id,
                "name": pkg.name,
                "versionInfo": pkg.version,
                "primaryPackagePurpose": "LIBRARY" if pkg.name.startswith("lib") else "APPLICATION",
                "downloadLocation": download_location(pkg.url),
                "comment": f"fetched from {pkg.url}",
                "filesAnalyzed": False,
                "sourceInfo": f"built from the {pkg.source_name} source package",
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": " AND ".join(ids) if ids else "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "checksums": [{"algorithm": "SHA256", "checksumValue": pkg.sha256}],
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": purl(image.distro, pkg),
                    }
                ],
            }
        )
        relationships.append({"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": pkg_id})
    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image.name,
        "documentNamespace": f"https://bootstrap.invalid/spdx/{urllib.parse.quote(image.name, safe='')}/"
        f"{image.manifest_digest.removeprefix('sha256:')}",
        "creationInfo": {"created": rfc3339(image.epoch), "creators": [f"Tool: bootstrap-{__version__}"]},
        "packages": spdx_packages,
        "relationships": relationships,
    }
    if image.insecure:
        doc["comment"] = INSECURE_NOTE
        doc["annotations"] = [
            {
                "annotationDate": rfc3339(image.epoch),
                "annotationType": "OTHER",
                "annotator": f"Tool: bootstrap-{__version__}",
                "comment": INSECURE_NOTE,
            }
        ]
    if extracted:
        doc["hasExtractedLicensingInfos"] = [
            {
                "licenseId": ref,
                "name": name,
                "extractedText": f"The {name} licence, as named in Debian copyright files.",
            }
            for ref, name in sorted(extracted.items())
        ]
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


__all__ = ["INSECURE_NOTE", "ImageInfo", "license_ref", "make", "purl"]
