"""SPDX 2.3 JSON software bill of materials: the image, and one package per installed .deb.

It carries the NTIA minimum elements (supplier from each package's Maintainer, version, unique id, the
relationships, author and timestamp) and what CISA's framing adds at its minimum: the licence concluded from
the copyright file, the copyright notices, and the kind of SBOM (in the creation comment: SPDX 2.3 has no field
for it). The same facts go into the CycloneDX form (`cyclonedx.py`) through `Component`.
"""

import json
import re
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bootstrap import __version__
from bootstrap.family.model import NO_NOTICE, Notice, Package, license_ref
from bootstrap.image.oci import rfc3339
from bootstrap.records import links
from bootstrap.records.system import OperatingSystem

SBOM_TYPE = "Build"
"""CISA's SBOM type: made by the tool that assembles the image, from the packages it installs."""
IMAGE_COPYRIGHT = "Each package of the image carries its own copyright notices (see its entry)."


@dataclass(frozen=True)
class ImageInfo:
    name: str
    distro: str
    arch: str
    epoch: int
    manifest_digest: str
    insecure: bool = False
    """Built with --insecure: said in a document comment and an annotation."""
    vendor: str = ""
    """Who supplies the image (the recipe's `org.opencontainers.image.vendor` label); default: the distribution."""
    system: OperatingSystem | None = None
    """The tree's operating system (os-release); default: the distribution, without a version."""
    base_url: str = links.DEFAULT
    """The base of the SPDX namespaces (`links.base_url`)."""

    @property
    def supplier(self) -> "Supplier":
        return Supplier(self.vendor or self.distro.capitalize(), "", True)

    @property
    def os(self) -> OperatingSystem:
        return self.system or OperatingSystem(self.distro)

    @property
    def os_supplier(self) -> "Supplier":
        """Who makes the operating system: the distribution."""
        return Supplier(self.distro.capitalize(), "", True)

    @property
    def purl(self) -> str:
        """The image's purl: `pkg:oci/<name>@sha256%3A<hex>?arch=<arch>&repository_url=<repository>&tag=<tag>`,
        as the purl spec's oci type has it (the name is the repository's last part, lower case; the repository
        URL only when the tag names a registry)."""
        return oci_purl(self.name, self.manifest_digest, self.arch)


INSECURE_NOTE = (
    "INSECURE BUILD: made with --insecure, so no archive signature was checked and nothing vouches for "
    "where these packages came from."
)

_TEAM_WORDS = re.compile(r"\b(team|maintainers|group|project|developers|debian|ubuntu|packagers)\b", re.IGNORECASE)
_MAINTAINER = re.compile(r"^\s*(?P<name>[^<]*?)\s*(?:<(?P<email>[^>]*)>)?\s*$")


@dataclass(frozen=True)
class Supplier:
    """A package's Maintainer: a person or a team (an organisation), with an address."""

    name: str
    email: str
    organization: bool

    @property
    def spdx(self) -> str:
        kind = "Organization" if self.organization else "Person"
        name = re.sub(r"[()\n]", " ", self.name).strip() or "unknown"
        return f"{kind}: {name}" + (f" ({self.email})" if self.email else "")


def supplier_of(maintainer: str) -> Supplier | None:
    """`Name <address>` -> Supplier; teams and lists count as organisations. None when there is no Maintainer."""
    m = _MAINTAINER.match(maintainer)
    if not maintainer.strip() or m is None:
        return None
    name, email = m.group("name").strip().strip('"'), (m.group("email") or "").strip()
    looks_like_list = bool(re.search(r"@lists\.|-maintainers@|-devel@|-team@|@tracker\.", email))
    return Supplier(name or email, email, bool(_TEAM_WORDS.search(name)) or looks_like_list)


def purl(system: OperatingSystem, pkg: Package) -> str:
    """`pkg:<type>/<os id>/<name>@<version>?arch=<arch>&distro=<os id>-<os version>`, percent-encoded as the
    purl spec requires; the `distro` qualifier as Trivy writes it for the packages of an image. An rpm's epoch
    is the `epoch` qualifier, not part of the version (the purl spec's rpm type; Trivy reads it only there)."""
    version, epoch = pkg.version, ""
    if pkg.purl_type == "rpm" and ":" in version:
        number, version = version.split(":", 1)
        epoch = f"&epoch={urllib.parse.quote(number, safe='')}"
    version = urllib.parse.quote(version, safe="")
    name, distro = urllib.parse.quote(pkg.name, safe=""), urllib.parse.quote(system.distro, safe="")
    namespace = urllib.parse.quote(system.id, safe="")
    return f"pkg:{pkg.purl_type}/{namespace}/{name}@{version}?arch={pkg.arch}&distro={distro}{epoch}"


def _split_tag(tag: str) -> tuple[str, str]:
    """`[registry/]path[:tag]` -> (repository, tag)."""
    last = tag.rsplit("/", 1)[-1]
    if ":" in last:
        return tag[: len(tag) - len(last)] + last.split(":", 1)[0], last.split(":", 1)[1]
    return tag, ""


def oci_purl(tag: str, digest: str, arch: str) -> str:
    """An image's purl (the purl spec's `oci` type)."""
    repository, label = _split_tag(tag)
    first = repository.split("/", 1)[0]
    has_registry = "/" in repository and ("." in first or ":" in first or first == "localhost")
    qualifiers = {"arch": arch, "repository_url": repository.lower() if has_registry else "", "tag": label}
    query = "&".join(f"{k}={urllib.parse.quote(v, safe='/:')}" for k, v in sorted(qualifiers.items()) if v)
    name = urllib.parse.quote(repository.rsplit("/", 1)[-1].lower(), safe="")
    return f"pkg:oci/{name}@{urllib.parse.quote(digest, safe='')}" + (f"?{query}" if query else "")


# SPDX 2.3's grammar for a download location's host wants a domain name ending in a top-level domain.
_SPDX_URL = re.compile(r"^(https?|ftp)://[a-z0-9]+([\-.][a-z0-9]+)*\.[a-z]{2,5}(:[0-9]{1,5})?(/.*)?$", re.IGNORECASE)


def download_location(url: str) -> str:
    """The URL where SPDX's grammar accepts it (not for IP addresses or one-label hosts), else NOASSERTION."""
    return url if _SPDX_URL.match(url) else "NOASSERTION"


def _spdx_ref(kind: str, name: str) -> str:
    return f"SPDXRef-{kind}-" + re.sub(r"[^A-Za-z0-9.\-]", "-", name)


@dataclass(frozen=True)
class Component:
    """One package as both SBOM formats report it."""

    package: Package
    supplier: Supplier | None
    declared: tuple[str, ...]
    """SPDX ids of the licences its machine-readable copyright file names."""
    concluded: str | None
    """The licence expression concluded from the copyright file: the declared ids joined by AND, else a
    LicenseRef- whose text is the whole (free-form) file; None when the image holds no copyright file."""
    copyright: str
    extracted: dict[str, tuple[str, str]]
    """LicenseRef- ids this component uses -> (name, text)."""


def component(distro: str, pkg: Package, notice: Notice | None) -> Component:
    notice = notice or NO_NOTICE
    ids = tuple(sorted({lic.id for lic in notice.licences}))
    extracted = {lic.id: (lic.name, lic.text) for lic in notice.licences if lic.id.startswith("LicenseRef-")}
    concluded = " AND ".join(ids) if ids else None
    if concluded is None and notice.text:
        ref = license_ref(f"copyright-{pkg.name}")
        extracted[ref] = (f"the terms in {notice.where}", notice.text)
        concluded = ref
    return Component(pkg, supplier_of(pkg.maintainer), ids, concluded, notice.copyright, extracted)


def components(distro: str, packages: Sequence[Package], notices: Mapping[str, Notice]) -> list[Component]:
    return [component(distro, p, notices.get(p.name)) for p in packages]


def image_license(parts: Sequence[Component]) -> str:
    """What the image as a whole is under: every licence its packages are under."""
    exprs = sorted({c.concluded for c in parts if c.concluded})
    return " AND ".join(f"({e})" if " " in e else e for e in exprs) or "NOASSERTION"


OS_ID = "SPDXRef-OperatingSystem"
"""The operating system's package: the image contains it, it contains the packages (as Trivy reads them)."""


def _purl_ref(locator: str) -> dict[str, str]:
    return {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": locator}


def make(image: ImageInfo, packages: Sequence[Package], notices: Mapping[str, Notice]) -> bytes:
    """The SBOM document; deterministic for a given image."""
    parts = components(image.distro, packages, notices)
    image_id = _spdx_ref("Image", image.name)
    extracted: dict[str, tuple[str, str]] = {}
    spdx_packages: list[dict[str, object]] = [
        {
            "SPDXID": image_id,
            "name": image.name,
            "versionInfo": image.manifest_digest,
            "supplier": image.supplier.spdx,
            "primaryPackagePurpose": "CONTAINER",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": image_license(parts),
            "licenseDeclared": "NOASSERTION",
            "copyrightText": IMAGE_COPYRIGHT,
            "checksums": [{"algorithm": "SHA256", "checksumValue": image.manifest_digest.removeprefix("sha256:")}],
            "externalRefs": [_purl_ref(image.purl)],
        },
        {
            "SPDXID": OS_ID,
            "name": image.os.id,
            "versionInfo": image.os.version or "NOASSERTION",
            "supplier": image.os_supplier.spdx,
            "primaryPackagePurpose": "OPERATING-SYSTEM",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": image_license(parts),
            "licenseDeclared": "NOASSERTION",
            "copyrightText": IMAGE_COPYRIGHT,
            **({"description": image.os.pretty_name} if image.os.pretty_name else {}),
        },
    ]
    relationships = [
        {"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES", "relatedSpdxElement": image_id},
        {"spdxElementId": image_id, "relationshipType": "CONTAINS", "relatedSpdxElement": OS_ID},
    ]
    for c in parts:
        pkg = c.package
        extracted.update(c.extracted)
        pkg_id = _spdx_ref(f"Package-{pkg.purl_type}", pkg.name)
        spdx_packages.append(
            {
                "SPDXID": pkg_id,
                "name": pkg.name,
                "versionInfo": pkg.version,
                "supplier": c.supplier.spdx if c.supplier else "NOASSERTION",
                "primaryPackagePurpose": "LIBRARY" if pkg.name.startswith("lib") else "APPLICATION",
                "downloadLocation": download_location(pkg.url),
                "comment": f"fetched from {pkg.url}",
                "filesAnalyzed": False,
                "sourceInfo": f"built from the {pkg.source_name} source package",
                "licenseConcluded": c.concluded or "NOASSERTION",
                "licenseDeclared": " AND ".join(c.declared) if c.declared else "NOASSERTION",
                "copyrightText": c.copyright or "NOASSERTION",
                "checksums": [{"algorithm": "SHA256", "checksumValue": pkg.sha256}],
                "externalRefs": [_purl_ref(purl(image.os, pkg))],
            }
        )
        relationships.append({"spdxElementId": OS_ID, "relationshipType": "CONTAINS", "relatedSpdxElement": pkg_id})
    doc = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": image.name,
        "documentNamespace": f"{image.base_url}/spdx/{urllib.parse.quote(image.name, safe='')}/"
        f"{image.manifest_digest.removeprefix('sha256:')}",
        "creationInfo": {
            "created": rfc3339(image.epoch),
            "creators": [f"Tool: bootstrap-{__version__}"],
            "comment": f"SBOM type: {SBOM_TYPE} (made while assembling the image, from the packages installed)",
        },
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
            {"licenseId": ref, "name": name, "extractedText": text} for ref, (name, text) in sorted(extracted.items())
        ]
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


__all__ = ["INSECURE_NOTE", "OS_ID", "Component", "ImageInfo", "license_ref", "make", "purl", "supplier_of"]
