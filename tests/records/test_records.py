"""Records say when a build skipped the signature checks: the lock (through `bootstrap lock`), the SBOM, and
`check` and `verify` warn when a previous build's records say so."""

import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bootstrap.build import recipe as recipe_mod
from bootstrap.build.inputs import inputs_of
from bootstrap.errors import BootstrapError
from bootstrap.records import lock as lock_mod
from bootstrap.records import sbom
from tests.cli.test_cli import cli
from tests.fixtures.gpg import GpgKey
from tests.fixtures.records import neutral_package
from tests.fixtures.repo import Repo

WARNING = "was built with --insecure: no archive signature vouched for its packages"


@pytest.fixture
def archive(tmp_path: Path, gpg_key: GpgKey, serve: Callable[[Path], str]) -> list[str]:
    """Source options for the debian-slim recipe on a small fixture archive."""
    repo = Repo(tmp_path / "repo", gpg_key)
    repo.debian_dists()
    repo.add_package("fixture", "base", "1.0", priority="required")
    repo.add_package("fixture", "apt", "3.0")
    repo.publish()
    url = serve(repo.root)
    cache = str(tmp_path / "cache")
    return ["--mirror", url, "--security-mirror", url, "--keyring", str(repo.keyring), "--cache-dir", cache]


def test_the_lock_says_whether_signatures_were_checked(tmp_path: Path, archive: list[str]) -> None:
    checked, unchecked = tmp_path / "checked.json", tmp_path / "unchecked.json"
    assert cli("lock", "debian-slim", "-o", str(checked), *archive).returncode == 0
    proc = cli("lock", "debian-slim", "-o", str(unchecked), "--insecure", *archive)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(checked.read_text())["insecure"] is False
    assert json.loads(unchecked.read_text())["insecure"] is True
    assert lock_mod.read(unchecked).insecure and not lock_mod.read(checked).insecure
    # a lock written before the field existed reads as a checked one
    old = json.loads(checked.read_text())
    del old["insecure"]
    checked.write_text(json.dumps(old))
    assert lock_mod.read(checked).insecure is False


def test_check_warns_about_an_insecure_previous_build(tmp_path: Path, archive: list[str]) -> None:
    checked, unchecked = tmp_path / "checked.json", tmp_path / "unchecked.json"
    cli("lock", "debian-slim", "-o", str(checked), *archive)
    cli("lock", "debian-slim", "-o", str(unchecked), "--insecure", *archive)
    quiet = cli("check", "debian-slim", "--against", str(checked), *archive)
    assert quiet.returncode == 0, quiet.stderr
    assert "insecure" not in quiet.stderr
    loud = cli("check", "debian-slim", "--against", str(unchecked), *archive)
    assert loud.returncode == 0, loud.stderr
    assert f"warning: {unchecked} {WARNING}" in loud.stderr.splitlines()
    assert loud.stdout == quiet.stdout == "up to date: a rebuild would change nothing\n"
    as_json = cli("check", "debian-slim", "--against", str(unchecked), "--json", *archive)
    assert json.loads(as_json.stdout)["changed"] is False, "the warning stays out of the JSON on stdout"


@pytest.mark.skipif(os.geteuid() != 0, reason="verify needs root")
def test_verify_warns_about_an_insecure_build_before_rebuilding(tmp_path: Path, serve: Callable[[Path], str]) -> None:
    # A record of an insecure build whose archive has gone: the warning comes first, then the rebuild's error.
    empty = tmp_path / "gone"
    empty.mkdir()
    url = serve(empty)
    out = tmp_path / "out"
    out.mkdir()
    recipe = json.loads(cli("show", "debian-slim").stdout)
    settings = {
        "suite": "stable",
        "arch": "amd64",
        "mirror": url,
        "security_mirror": url,
        "compression": "gzip",
        "epoch": 0,
        "tag": "debian:fixture-slim",
        "insecure": True,
    }
    inputs = inputs_of(recipe_mod.from_data(dict(recipe), "debian-slim", "test"))
    lock = dataclasses.replace(LOCK, insecure=True, inputs=inputs)
    (out / "lock.json").write_bytes(lock.to_json())
    files = {"lock.json": "sha256:" + hashlib.sha256(lock.to_json()).hexdigest()}
    (out / "build.json").write_text(json.dumps({"recipe": recipe, "build": settings, "files": files}))
    proc = cli("verify", str(out), "--insecure", "--cache-dir", str(tmp_path / "cache"))
    lines = proc.stderr.splitlines()
    assert proc.returncode == 1
    assert lines[0] == f"warning: {out} {WARNING}"
    assert lines[-2].startswith("error: suite 'stable' not found")


def test_sbom_of_an_insecure_build_says_so() -> None:
    info = sbom.ImageInfo("debian:fixture-slim", "debian", "amd64", 1704067200, "sha256:" + "a" * 64)
    packages = [neutral_package("hello")]
    checked = json.loads(sbom.make(info, packages, {}))
    assert "comment" not in checked and "annotations" not in checked
    unchecked = json.loads(sbom.make(dataclasses.replace(info, insecure=True), packages, {}))
    assert "--insecure" in unchecked["comment"]
    (note,) = unchecked["annotations"]
    assert note["annotationType"] == "OTHER" and note["comment"] == unchecked["comment"]
    assert note["annotationDate"] == "2024-01-01T00:00:00Z"


def test_sbom_of_an_insecure_build_is_valid_spdx(tmp_path: Path) -> None:
    tool = shutil.which("pyspdxtools", path=str(Path(sys.executable).parent)) or shutil.which("pyspdxtools")
    if tool is None:
        pytest.skip("pyspdxtools is not installed")
    info = sbom.ImageInfo("debian:fixture-slim", "debian", "amd64", 1704067200, "sha256:" + "a" * 64, insecure=True)
    doc = tmp_path / "sbom.spdx.json"
    doc.write_bytes(sbom.make(info, [neutral_package("hello")], {}))
    proc = subprocess.run([tool, "-i", str(doc)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("purl_type", "version", "expected"),
    [
        ("rpm", "1:9.4-5", "pkg:rpm/almalinux/coreutils@9.4-5?arch=x86_64&distro=almalinux-9.6&epoch=1"),
        ("rpm", "9.4-5", "pkg:rpm/almalinux/coreutils@9.4-5?arch=x86_64&distro=almalinux-9.6"),
        ("deb", "1:9.4-5", "pkg:deb/almalinux/coreutils@1%3A9.4-5?arch=x86_64&distro=almalinux-9.6"),
    ],
)
def test_an_rpm_epoch_is_a_purl_qualifier(purl_type: str, version: str, expected: str) -> None:
    """The purl spec's rpm type keeps the epoch out of the version (Trivy reads it only as `epoch=`); a deb
    version keeps it, as Debian's purls always have."""
    from bootstrap.records.system import OperatingSystem

    pkg = dataclasses.replace(neutral_package("coreutils"), version=version, arch="x86_64", purl_type=purl_type)
    assert sbom.purl(OperatingSystem("almalinux", "9.6"), pkg) == expected


def test_a_lock_naming_its_architecture_by_the_kernels_name_reads_as_ours() -> None:
    """A hand-written `"arch": "x86_64"` is the amd64 a build and `check` compare with, not another request."""
    lock = dataclasses.replace(LOCK, arch="x86_64")
    assert lock_mod.parse(lock.to_json(), "lock.json").arch == "amd64"
    odd = json.loads(lock.to_json())
    odd["arch"] = ["amd64"]
    with pytest.raises(BootstrapError, match="malformed lock file"):
        lock_mod.parse(json.dumps(odd).encode(), "lock.json")


LOCK = lock_mod.Lock(
    "debian-slim",
    "debian",
    "stable",
    "fixture",
    "amd64",
    0,
    (lock_mod.LockedSource("http://mirror.invalid/debian", "fixture", "stable", 0, "0" * 64),),
    (lock_mod.LockedPackage("base-files", "13", "amd64", "pool/b.deb", 1, "0" * 64, "fixture"),),
)


@pytest.mark.parametrize(
    ("change", "said"),
    [
        (lambda d: d.update(epoch=1e400), "epoch is not a int"),
        (lambda d: d.update(epoch=2**63), "epoch is not between 0"),
        (lambda d: d.update(epoch=-5), "epoch is not between 0"),
        (lambda d: d.update(epoch=True), "epoch is not a int"),
        (lambda d: d.update(arch=7), "arch is not a str"),
        (lambda d: d.update(packages=[]), "packages is not a list of at least one package"),
        (lambda d: d.update(packages={}), "packages is not a list"),
        (lambda d: d["packages"][0].update(size="1"), "size of an entry of packages is not a int"),
        (lambda d: d["packages"][0].pop("sha256"), "an entry of packages does not have the fields"),
        (lambda d: d.update(sources=[1]), "an entry of sources does not have the fields"),
        (lambda d: d.update(lockVersion=1.0), "unsupported lockVersion 1.0"),
    ],
)
def test_a_lock_of_the_wrong_shape_is_one_line(change: Callable[[dict[str, Any]], object], said: str) -> None:
    """A lock given with --lock (or read by verify and check) is someone else's file: a field of the wrong type,
    an epoch no image can have, no packages at all: one line each, never an internal error or an empty image."""
    assert lock_mod.parse(LOCK.to_json(), "lock.json") == LOCK
    data = json.loads(LOCK.to_json())
    change(data)
    with pytest.raises(BootstrapError, match=re.escape(said)) as err:
        lock_mod.parse(json.dumps(data).replace("Infinity", "1e400").encode(), "lock.json")
    assert "\n" not in err.value.message


def test_a_lock_nested_past_the_parser_is_one_line() -> None:
    with pytest.raises(BootstrapError, match="nested too deeply"):
        lock_mod.parse(b"[" * 100_000, "lock.json")
