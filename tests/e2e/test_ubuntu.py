"""`bootstrap ubuntu` for noble and resolute from the real Ubuntu archive (found as the product finds it: the
host's apt sources, else the default mirror of the host's debootstrap scripts), checked in a real Docker Engine,
against a real `debootstrap --variant=minbase` of the same suite, and rebuilt bit for bit."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bootstrap.build import recipe
from bootstrap.build.pipeline import resolve_plan
from bootstrap.build.plan import Options, make_plan
from bootstrap.deb import debootstrap, mirrors, relations, releases
from bootstrap.deb.distros import DISTROS, Distro
from bootstrap.deb.family import DebSelection
from bootstrap.deb.filters import PathFilter
from bootstrap.host.openpgp import dearmor
from tests.e2e.conftest import ROOT, Build, bootstrap, need_tool, run, sections, unique_tag
from tests.fixtures import trivy

pytestmark = pytest.mark.e2e

Docker = Callable[..., subprocess.CompletedProcess[str]]
UBUNTU = DISTROS[Distro.UBUNTU]
SUITES = ("noble", "resolute")
VERSIONS = {"noble": "24.04", "resolute": "26.04"}

ADDED = {"noble": {"unminimize"}, "resolute": set()}
"""What the official build installs beyond debootstrap's minbase (see the README): noble's unminimize."""

OFFICIAL_LAYER = {"noble": 29_764_116, "resolute": 41_573_390}
"""Compressed amd64 layer of the official images (docker-library/repo-info, repos/ubuntu/remote/
noble-20260911.md and resolute-20260912.md). Ours may be at most 3% larger: the archive moves on."""

APT_DIRS = {"/var/cache/apt/archives", "/var/cache/apt/archives/partial", "/var/lib/apt/lists/partial"}

CHECKS = r"""
set -u
echo "== os"; . /etc/os-release; echo "$VERSION_CODENAME $VERSION_ID"
echo "== audit"; dpkg --audit; echo "rc=$?"
echo "== verify"; dpkg -V; echo "rc=$?"
echo "== id"; id ubuntu
echo "== home"; stat -c '%U:%G %a' /home/ubuntu
echo "== sources"; cat /etc/apt/sources.list.d/ubuntu.sources
echo "== sources.list"; cat /etc/apt/sources.list
echo "== container"; cat /run/systemd/container
echo "== diversions"; dpkg-divert --list | sort
echo "== man"; man ls
echo "== ls"; ls --version | head -n 1
echo "== curl"
apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq curl >/dev/null 2>&1
curl --version | head -n 1
echo "== end"
"""


@pytest.fixture(scope="session")
def ubuntu_build(tmp_path_factory: pytest.TempPathFactory, as_root: None) -> Callable[[str], Build]:
    """`ubuntu_build(suite)`: the ubuntu recipe built once per session from the real archive."""
    built: dict[str, Build] = {}

    def get(suite: str) -> Build:
        if suite not in built:
            out = tmp_path_factory.mktemp(f"ubuntu-{suite}") / "out"
            bootstrap("ubuntu", "--suite", suite, "-o", str(out), "-q")
            built[suite] = Build(suite, out, f"ubuntu:{suite}")
        return built[suite]

    return get


def loaded(docker: Docker, build: Build) -> str:
    tag = unique_tag(f"ubuntu-{build.suite}")
    docker.created.append(tag)  # type: ignore[attr-defined]
    out = docker("load", "-i", str(build.image)).stdout
    assert f"Loaded image: {build.tag}" in out, out
    docker("tag", build.tag, tag)
    return tag


def expected_sources(suite: str) -> list[str]:
    found = mirrors.discover(UBUNTU, None, None, suite, "amd64")
    stanza = (
        "Types: deb\nURIs: {}\nSuites: {}\nComponents: main universe restricted multiverse\n"
        "Signed-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n"
    )
    text = (
        stanza.format(found.main, f"{suite} {suite}-updates {suite}-backports")
        + "\n"
        + stanza.format(found.security, f"{suite}-security")
    )
    return text.splitlines()


@pytest.mark.parametrize("suite", SUITES)
def test_image_runs_and_is_healthy_in_docker(suite: str, ubuntu_build: Callable[[str], Build], docker: Docker) -> None:
    build = ubuntu_build(suite)
    tag = loaded(docker, build)
    result = sections(docker("run", "--rm", "--network", "host", tag, "bash", "-c", CHECKS).stdout)

    assert result["os"] == [f"{suite} {VERSIONS[suite]}"]
    assert result["audit"] == ["rc=0"], "dpkg --audit must print nothing"
    rec = recipe.load("ubuntu")
    pfilter = PathFilter.from_lists(rec.path_exclude, rec.path_include)
    reported = [line for line in result["verify"] if not line.startswith("rc=")]
    assert reported, "the excluded documentation must be reported missing"
    stray = [line for line in reported if not line.startswith("missing ") or not pfilter.skips(line.split()[-1])]
    assert not stray, f"dpkg -V reports more than the excluded paths: {stray[:10]}"
    assert not [line for line in reported if line.split()[-1] in APT_DIRS], "apt's directories stay"

    assert result["id"][0].startswith("uid=1000(ubuntu) gid=1000(ubuntu) groups=1000(ubuntu),4(adm)"), result["id"]
    assert result["home"] == ["ubuntu:ubuntu 750"]
    assert result["sources"] == expected_sources(suite)
    assert result["sources.list"] and all(line.startswith("#") for line in result["sources.list"])
    assert result["container"] == ["docker"]
    diversions = " ".join(result["diversions"])
    assert "local diversion of /sbin/initctl to /sbin/initctl.distrib" in diversions
    assert "local diversion of /usr/bin/man to /usr/bin/man.REAL" in diversions
    assert any("unminimize" in line for line in result["man"])
    if suite == "resolute":
        assert "uutils" in result["ls"][0], "resolute ships the Rust coreutils (coreutils-from-uutils)"
    assert result["curl"] and result["curl"][0].startswith("curl "), result["curl"]


def debootstrap_minbase(suite: str, target: Path) -> set[str]:
    """The packages `debootstrap --variant=minbase` installs for the suite, from the same mirror and keys."""
    tool = need_tool("debootstrap")
    script = debootstrap.script_for(suite, UBUNTU.debootstrap_script)
    assert script is not None, "the host's debootstrap has no script for Ubuntu"
    rec = recipe.load("ubuntu")
    keyring = target.parent / "ubuntu-archive-keyring.gpg"
    keyring.write_bytes(dearmor(Path(rec.archive_keyring).read_bytes(), rec.archive_keyring))
    mirror = mirrors.discover(UBUNTU, None, None, suite, "amd64").main
    run(
        [
            tool,
            "--variant=minbase",
            "--download-only",
            f"--keyring={keyring}",
            "--arch=amd64",
            suite,
            str(target),
            mirror,
            str(script),
        ]
    )
    return {p.name.split("_", 1)[0] for p in (target / "var/cache/apt/archives").glob("*.deb")}


@pytest.mark.parametrize("suite", SUITES)
def test_package_set_is_minbase_plus_the_official_additions(
    suite: str, ubuntu_build: Callable[[str], Build], tmp_path: Path
) -> None:
    """debootstrap reads only the release pocket; the image is made from -updates and -security too, whose
    newer versions may depend on more. Every package beyond minbase and the documented additions must be such
    a dependency; nothing of minbase may be missing."""
    ours = {line.split("\t")[0] for line in (ubuntu_build(suite).out / "packages.txt").read_text().splitlines()}
    minbase = debootstrap_minbase(suite, tmp_path / "target")
    expected = minbase | ADDED[suite]
    plan = make_plan(recipe.load("ubuntu"), Options(suite=suite, arch="amd64"))
    archive, selection = resolve_plan(plan)
    assert isinstance(selection, DebSelection), "an ubuntu recipe resolves in the deb family"
    updated = [p for p in selection.debs.packages if p.dist != archive.codename]
    pulled = {
        rel.name
        for p in updated
        for group in relations.parse(p.depends) + relations.parse(p.pre_depends)
        for rel in group
    }
    missing = sorted(expected - ours)
    unexplained = sorted(ours - expected - pulled)
    assert not missing and not unexplained, (
        f"{suite}: missing from ours: {missing}; ours only, not explained by an update: {unexplained}; "
        f"ours only, pulled by updates: {sorted(ours - expected)}"
    )


@pytest.mark.parametrize("suite", SUITES)
def test_layer_is_in_the_official_size_class(suite: str, ubuntu_build: Callable[[str], Build]) -> None:
    provenance = json.loads((ubuntu_build(suite).out / "build.json").read_text())
    size = provenance["image"]["layer_size"]
    assert size <= OFFICIAL_LAYER[suite] * 1.03, f"{suite}: layer {size} bytes, official {OFFICIAL_LAYER[suite]}"


def test_rebuild_is_bit_identical_with_lock_and_sbom(ubuntu_build: Callable[[str], Build], tmp_path: Path) -> None:
    first = ubuntu_build("noble")
    out = tmp_path / "again"
    script = (
        f'umask 077; cd {tmp_path} && TZ=Pacific/Kiritimati exec "$0" -m bootstrap ubuntu --suite noble -o {out} -q'
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    run(["sh", "-c", script, sys.executable], env=env)
    for name in ("image.tar", "rootfs.tar.gz", "lock.json", "sbom.spdx.json", "packages.txt"):
        assert (out / name).read_bytes() == (first.out / name).read_bytes(), f"{name} differs"

    lock = json.loads((first.out / "lock.json").read_text())
    assert (lock["recipe"], lock["distribution"], lock["suite"], lock["codename"]) == (
        "ubuntu",
        "ubuntu",
        "noble",
        "noble",
    )
    assert {s["dist"] for s in lock["sources"]} == {"noble", "noble-updates", "noble-security"}
    assert {"kind": "keyring", "name": "archive"} in [{k: i[k] for k in ("kind", "name")} for i in lock["inputs"]]
    sbom = json.loads((first.out / "sbom.spdx.json").read_text())
    purls = [r["referenceLocator"] for p in sbom["packages"][1:] for r in p.get("externalRefs", [])]
    assert len(lock["packages"]) == len(purls) > 80
    assert all(p.startswith("pkg:deb/ubuntu/") and p.endswith("&distro=ubuntu-24.04") for p in purls)
    pyspdxtools = need_tool("pyspdxtools")
    run([pyspdxtools, "-i", str(first.out / "sbom.spdx.json")])


def test_no_default_user_leaves_uid_1000_free(docker: Docker, tmp_path: Path, as_root: None) -> None:
    out = tmp_path / "out"
    bootstrap("ubuntu", "--suite", "resolute", "--no-default-user", "-o", str(out), "-q", "--tag", "ubuntu:nouser")
    tag = loaded(docker, Build("resolute", out, "ubuntu:nouser"))
    shown = docker("run", "--rm", tag, "sh", "-c", "getent passwd 1000; getent group 1000; ls -A /home; echo end")
    assert shown.stdout == "end\n"
    assert json.loads((out / "build.json").read_text())["recipe"]["default-user"] is False


def test_default_suite_is_the_newest_lts_and_verify_replays_a_build(
    ubuntu_build: Callable[[str], Build], tmp_path: Path
) -> None:
    newest = releases.resolve(UBUNTU.release_table, "lts")
    locked = bootstrap("lock", "ubuntu", "-o", str(tmp_path / "ubuntu.lock.json")).stdout
    assert locked.rstrip().endswith(f", {newest})"), locked
    assert json.loads((tmp_path / "ubuntu.lock.json").read_text())["suite"] == newest
    verified = bootstrap("verify", str(ubuntu_build("noble").out), "-q").stdout
    assert verified.startswith("verified: image.tar"), verified


@pytest.mark.parametrize("suite", SUITES)
def test_trivy_reads_every_package_of_the_sboms(
    suite: str, ubuntu_build: Callable[[str], Build], tmp_path: Path
) -> None:
    found = trivy.check_build(ubuntu_build(suite).out, tmp_path / "trivy-cache", "ubuntu", VERSIONS[suite])
    print(f"trivy {trivy.version()}: ubuntu {suite}: {found} packages")
