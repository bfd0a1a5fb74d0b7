"""Trivy reads every package of every SBOM format we write, under the operating system the tree's os-release
names: a real build of a fixture archive through the command line, and real `trivy sbom` scans."""

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.records import links, outputs
from bootstrap.records.system import OperatingSystem, read
from tests.cli.test_cli import cli
from tests.fixtures import trivy
from tests.fixtures.gpg import GpgKey
from tests.fixtures.repo import Repo
from tests.fixtures.shared import made_once

RECIPE = """\
scripts = false
[packages]
priorities = []
essential = false
include = ["base-files", "tool"]
[image]
tag = "localhost:5000/team/fixture-scan:{codename}"
cmd = []
"""
DOCS = "https://docs.localhost/bootstrap"
"""The records URL the build is given (`$BOOTSTRAP_RECORDS_URL`, with a trailing slash that is dropped)."""
OS_RELEASE = 'PRETTY_NAME="Fixture OS 12 (fixture)"\nID=debian\nVERSION_ID="12"\nVERSION_CODENAME=fixture\n'
READ = (outputs.SPDX.file, outputs.CYCLONEDX.file)
"""The formats Trivy reads (not SPDX 3: see `test_trivy_does_not_read_spdx3_yet`)."""


@pytest.fixture
def built(tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey, serve: Callable[[Path], str]) -> Path:
    """The build's output directory, every SBOM format in it; built once for the run (read only)."""

    def make(work: Path) -> None:
        repo = Repo(work / "repo", gpg_key)
        repo.debian_dists()
        repo.add_package(
            "fixture", "base-files", "12.4+deb12u1", priority="required",
            files={"/usr/lib/os-release": OS_RELEASE}, symlinks={"/etc/os-release": "../usr/lib/os-release"},
        )  # fmt: skip
        repo.add_package("fixture", "tool", "1:2.0~rc1-3", depends="libtool-extra")
        repo.add_package("fixture", "libtool-extra", "0.9+dfsg-1", arch="all")
        repo.publish()
        url = serve(repo.root)
        recipe = work / "scan.toml"
        recipe.write_text(RECIPE)
        args = ["build", str(recipe), "-o", str(work / "out"), "--mirror", url, "--security-mirror", url]
        args += ["--keyring", str(repo.keyring), "--cache-dir", str(work / "cache"), "--epoch", "1750000000", "-q"]
        proc = cli(*args, "--sbom-format", "spdx3", "--sbom-format", "cyclonedx", env={links.ENV: DOCS + "/"})
        assert proc.returncode == 0, proc.stderr

    return made_once(tmp_path_factory, f"scanned-build-{gpg_key.fingerprint}", make) / "out"


def installed(out: Path) -> set[tuple[str, str]]:
    return {tuple(line.split("\t")[:2]) for line in (out / "packages.txt").read_text().splitlines()}  # type: ignore[misc]


@pytest.mark.parametrize("sbom", READ)
def test_trivy_finds_the_os_and_every_package(built: Path, sbom: str, tmp_path: Path) -> None:
    found = trivy.scan(built / sbom, tmp_path / "trivy-cache")
    assert found.os == {"Family": "debian", "Name": "12"}
    assert found.packages == installed(built) and len(found.packages) == 3
    assert all("&distro=debian-12" in p for p in found.purls), found.purls


def test_trivy_does_not_read_spdx3_yet(built: Path, tmp_path: Path) -> None:
    """When a Trivy that reads SPDX 3 is out, this fails: then scan it like the others."""
    proc = trivy.run(built / outputs.SPDX3.file, tmp_path / "trivy-cache")
    assert proc.returncode != 0 and trivy.UNREAD_SPDX3 in proc.stderr, proc.stderr


def test_the_image_and_the_os_in_each_format(built: Path) -> None:
    spdx = json.loads((built / outputs.SPDX.file).read_text())
    image, system = spdx["packages"][:2]
    (image_purl,) = [r["referenceLocator"] for r in image["externalRefs"]]
    assert image_purl.startswith("pkg:oci/fixture-scan@sha256%3A")
    assert image_purl.endswith("?arch=amd64&repository_url=localhost:5000/team/fixture-scan&tag=fixture")
    assert (system["name"], system["versionInfo"], system["primaryPackagePurpose"]) == (
        "debian",
        "12",
        "OPERATING-SYSTEM",
    )
    assert spdx["documentNamespace"].startswith(DOCS + "/spdx/localhost%3A5000%2Fteam%2Ffixture-scan%3Afixture/")
    cdx = json.loads((built / outputs.CYCLONEDX.file).read_text())
    assert cdx["metadata"]["component"]["purl"] == image_purl
    (os_component,) = [c for c in cdx["components"] if c["type"] == "operating-system"]
    assert (os_component["name"], os_component["version"]) == ("debian", "12")
    graph = json.loads((built / outputs.SPDX3.file).read_text())["@graph"]
    (os_node,) = [n for n in graph if n.get("software_primaryPurpose") == "operatingSystem"]
    assert os_node["software_packageVersion"] == "12" and os_node["spdxId"].startswith(DOCS + "/spdx3/")
    provenance = json.loads((built / outputs.PROVENANCE.file).read_text())["predicate"]
    assert provenance["buildDefinition"]["buildType"] == DOCS + "/buildtypes/image/v1"
    assert provenance["runDetails"]["builder"]["id"] == DOCS + "/builder"


def test_os_release_is_read_inside_the_tree_only(tmp_path: Path) -> None:
    default = OperatingSystem("debian", "", "trixie")
    root = tmp_path / "root"
    (root / "usr/lib").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "usr/lib/os-release").write_text("ID=ubuntu\nVERSION_ID='24.04'\nVERSION_CODENAME=noble\n")
    (root / "etc/os-release").symlink_to("/usr/lib/os-release")  # absolute: the tree's, not the host's
    assert read(root, default) == OperatingSystem("ubuntu", "24.04", "noble")
    assert read(root, default).distro == "ubuntu-24.04"
    (root / "etc/os-release").unlink()
    (root / "etc/os-release").symlink_to("../../../../../../etc/os-release")  # out of the tree: skipped
    (root / "usr/lib/os-release").write_text("ID=debian\nVERSION_CODENAME=forky\n")
    assert read(root, default) == OperatingSystem("debian", "", "forky"), "testing: the codename is the version"
    assert read(root, default).distro == "debian-forky"
    (root / "usr/lib/os-release").unlink()
    assert read(root, default) is default


def test_a_bad_records_url_fails_before_anything_is_fetched(tmp_path: Path) -> None:
    unreachable = "http://127.0.0.1:9/debian"
    out = tmp_path / "out"
    args = ["build", "debian-slim", "-o", str(out), "--mirror", unreachable, "--security-mirror", unreachable]
    proc = cli(*args, "--cache-dir", str(tmp_path / "cache"), "-q", env={links.ENV: "ftp://docs.localhost/x"})
    assert proc.returncode == 1 and proc.stderr.startswith(f"error: ${links.ENV} is not an http(s) URL"), proc.stderr
    assert not out.exists() and not (tmp_path / "cache").exists()


def test_records_url_is_checked() -> None:
    assert links.base_url({links.ENV: "https://docs.localhost/bootstrap/"}) == "https://docs.localhost/bootstrap"
    assert links.base_url({}) == links.DEFAULT
    from bootstrap.errors import BootstrapError

    for bad in ("ftp://x/y", "not a url", "https://h/p?q=1"):
        with pytest.raises(BootstrapError):
            links.base_url({links.ENV: bad})
