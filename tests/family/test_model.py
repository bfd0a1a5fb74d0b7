"""The neutral package model: what the deb family hands the generic layers, and SBOMs made from a package of
another family without a word of Debian in them."""

import dataclasses
import json

from bootstrap.deb.copyright import make_notice
from bootstrap.family import model
from bootstrap.records import cyclonedx, sbom, spdx3
from bootstrap.records.system import OperatingSystem
from tests.fixtures.records import package

INFO = sbom.ImageInfo(
    "fixture:1", "fedora", "amd64", 1704067200, "sha256:" + "c" * 64, system=OperatingSystem("fedora", "41")
)


def test_a_deb_package_as_the_generic_layers_see_it() -> None:
    deb = dataclasses.replace(package("libc6", "2.36-9+deb12u4"), source="glibc (2.36-9)", dist="trixie-security")
    p = deb.neutral()
    assert (p.name, p.version, p.arch, p.purl_type) == ("libc6", "2.36-9+deb12u4", "amd64", "deb")
    assert (p.source_name, p.source_version) == ("glibc", "2.36-9")
    assert (p.url, p.filename, p.sha256, p.size) == (deb.url, deb.filename, deb.sha256, deb.size)
    assert p.security and not dataclasses.replace(p, dist="trixie").security
    plain = package("hello", "2.10-3").neutral()
    assert (plain.source_name, plain.source_version) == ("hello", "2.10-3"), "no Source: field: the binary's own"


def test_a_debian_copyright_file_as_a_neutral_notice() -> None:
    notice = make_notice("base", ("GPL-2+", "Expat", "Sleepycat-ish"), "2020 Jane Doe", "Format: ...")
    assert [lic.id for lic in notice.licences] == ["GPL-2.0-or-later", "MIT", "LicenseRef-Sleepycat-ish"]
    assert notice.licences[2].text == "The Sleepycat-ish licence, as named in Debian copyright files."
    assert notice.where == "/usr/share/doc/base/copyright"


def _rpm(name: str) -> model.Package:
    return model.Package(
        name, "1.2-3.fc41", "x86_64", f"Packages/{name}.rpm", f"http://127.0.0.1/Packages/{name}.rpm", 10,
        "d" * 64, "updates", name, "1.2-3.fc41", "Fedora Project <devel@lists.example.invalid>", purl_type="rpm",
    )  # fmt: skip


def test_sboms_of_another_family_carry_its_purl_type_and_its_terms() -> None:
    terms = model.Notice((), "Copyright 2001 Someone", "Free-form terms.\n", "/usr/share/licenses/zlib/COPYING")
    notices = {"zlib": terms, "bash": model.Notice((model.Licence("GPL-3.0-or-later", "GPLv3+"),), "", "")}
    packages = [_rpm("bash"), _rpm("zlib")]
    spdx = json.loads(sbom.make(INFO, packages, notices))
    image, system, *packaged = spdx["packages"]
    assert (system["name"], system["versionInfo"], system["primaryPackagePurpose"]) == (
        "fedora",
        "41",
        "OPERATING-SYSTEM",
    )
    refs = [r["referenceLocator"] for p in packaged for r in p["externalRefs"]]
    assert refs == [
        "pkg:rpm/fedora/bash@1.2-3.fc41?arch=x86_64&distro=fedora-41",
        "pkg:rpm/fedora/zlib@1.2-3.fc41?arch=x86_64&distro=fedora-41",
    ]
    assert packaged[0]["SPDXID"] == "SPDXRef-Package-rpm-bash"
    assert packaged[0]["licenseConcluded"] == "GPL-3.0-or-later"
    (extracted,) = spdx["hasExtractedLicensingInfos"]
    assert extracted["name"] == "the terms in /usr/share/licenses/zlib/COPYING"
    text = spdx3.make(INFO, packages, notices).decode() + cyclonedx.make(INFO, packages, notices).decode()
    assert "pkg:rpm/fedora/zlib@1.2-3.fc41?arch=x86_64&distro=fedora-41" in text
    assert "deb" not in text.replace("Debian", "").lower(), "nothing of the deb family in another's SBOMs"
