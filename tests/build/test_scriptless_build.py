"""A whole scriptless build from a signed fixture archive on 127.0.0.1, run through the command line as
`nobody`: no root, no user namespace, no subordinate ids. The layer says what a root build says, and a root
build of the same recipe gives the same bytes."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.certs import self_signed
from tests.fixtures.debs import TarEntry, build_raw_deb, raw_control
from tests.fixtures.gpg import GpgKey
from tests.fixtures.repo import Repo

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
EPOCH = 1_750_000_000
COPYRIGHT = "Format: https://example.invalid/copyright-format/1.0/\n\nFiles: *\nCopyright: nobody\nLicense: GPL-2+\n"
RECIPE = """\
scripts = false
[packages]
priorities = []
essential = false
include = ["base-files", "tzdata", "ca-certificates", "owned"]
ignore-depends = ["awk", "debconf", "debconf-2.0", "openssl"]
[filters]
path-exclude = ["/usr/share/doc/*"]
path-include = ["/usr/share/doc/*/copyright"]
[image]
tag = "fixture-static:{codename}"
user = "65532"
cmd = []
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody (and for the reference)")


@dataclass(frozen=True)
class Scene:
    work: Path
    args: list[str]

    def build(self, out: Path, as_nobody: bool, cache: Path) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "bootstrap", "build", str(self.work / "static.toml"), "-o", str(out), "-q"]
        env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT), "HOME": str(self.work), "LC_ALL": "C.UTF-8"}
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"] if as_nobody else []
        return subprocess.run(
            [*prefix, *argv, *self.args, "--cache-dir", str(cache), "--epoch", str(EPOCH)],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.work,
        )


@pytest.fixture(scope="module")
def scene(gpg_key: GpgKey, serve_session: Callable[[Path], str]) -> Iterator[Scene]:
    """A fixture archive of small packages that stand in for distroless's, and a directory nobody owns."""
    work = Path(tempfile.mkdtemp(prefix="bootstrap-scriptless-"))
    try:
        repo = Repo(work / "repo", gpg_key)
        repo.debian_dists()
        cert = self_signed(work / "root-ca.crt", "Fixture Root CA")
        repo.add_package(
            "fixture", "base-files", "13", pre_depends="awk",
            dirs=["/tmp", "/root", "/var/run", "/etc"],
            files={"/usr/lib/os-release": 'ID=debian\nVERSION_CODENAME=fixture\n',
                   "/usr/share/doc/base-files/copyright": COPYRIGHT, "/usr/share/doc/base-files/README": "r"},
            symlinks={"/etc/os-release": "../usr/lib/os-release"},
        )  # fmt: skip
        repo.add_package(
            "fixture", "tzdata", "2025a", depends="debconf (>= 0.5) | debconf-2.0",
            files={"/usr/share/zoneinfo/Etc/UTC": b"TZif2 utc"}, symlinks={"/usr/share/zoneinfo/UTC": "Etc/UTC"},
        )  # fmt: skip
        repo.add_package(
            "fixture", "ca-certificates", "20250419", depends="openssl (>= 1.1.1), debconf",
            files={"/usr/share/ca-certificates/mozilla/Fixture_Root.crt": cert},
        )  # fmt: skip
        for name in ("debconf", "openssl", "mawk"):
            repo.add_package("fixture", name, "1", provides="awk" if name == "mawk" else "")
        owned = [
            TarEntry("./", "dir"),
            TarEntry("./srv/", "dir"),
            TarEntry("./srv/null", "chr", mode=0o666, device=(1, 3)),
            TarEntry("./srv/locked/", "dir", mode=0o500, uid=42, gid=42),
            TarEntry("./srv/locked/secret", data=b"s3cret\n", mode=0o400, uid=42, gid=42),
            TarEntry("./usr/", "dir"),
            TarEntry("./usr/bin/", "dir"),
            TarEntry("./usr/bin/su", data=b"\x7fELF su", mode=0o4755),
        ]
        repo.add_deb("fixture", build_raw_deb(work / "owned_1.0_amd64.deb", raw_control("owned"), owned))
        repo.publish()
        url = serve_session(repo.root)
        (work / "static.toml").write_text(RECIPE)
        for path in [work, *work.rglob("*")]:
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chown(work, NOBODY, NOBODY)
        os.chmod(work, 0o700)
        yield Scene(work, ["--mirror", url, "--security-mirror", url, "--keyring", str(repo.keyring)])
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def built(scene: Scene) -> Path:
    out = scene.work / "out-nobody"
    proc = scene.build(out, as_nobody=True, cache=scene.work / "cache")
    assert proc.returncode == 0, proc.stderr
    return out


def layer(out: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(out / "rootfs.tar.gz") as tar:
        return {m.name: m for m in tar}


def read(out: Path, name: str) -> bytes:
    with tarfile.open(out / "rootfs.tar.gz") as tar:
        f = tar.extractfile(name)
        assert f is not None, name
        return f.read()


def test_nobody_builds_without_a_namespace(built: Path) -> None:
    assert all(p.stat().st_uid == NOBODY for p in [built, *built.iterdir()]), "the outputs are the builder's"
    by = layer(built)
    assert by["srv/null"].ischr() and (by["srv/null"].devmajor, by["srv/null"].devminor, by["srv/null"].mode) == (
        1,
        3,
        0o666,
    )
    assert (by["srv/locked"].uid, by["srv/locked"].mode) == (42, 0o500) and by["srv/locked/secret"].uid == 42
    assert by["usr/bin/su"].mode == 0o4755 and by["usr/bin/su"].uid == 0
    assert by["home/nonroot"].uid == 65532 and by["home/nonroot"].mode == 0o700
    assert by["tmp"].mode == 0o1777 and by["etc/localtime"].linkname == "/usr/share/zoneinfo/Etc/UTC"
    assert all(m.uid in (0, 42, 65532) for m in by.values()), "no id of the builder leaks into the layer"


def test_the_declared_files_and_the_database(built: Path) -> None:
    by = layer(built)
    assert b"nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n" in read(built, "etc/passwd")
    assert read(built, "etc/ssl/certs/ca-certificates.crt") == (built.parent / "root-ca.crt").read_bytes()
    names = sorted(n.rsplit("/", 1)[1] for n in by if n.startswith("var/lib/dpkg/status.d/"))
    packages = ["base-files", "ca-certificates", "owned", "tzdata"]
    assert names == sorted(packages + [f"{p}.md5sums" for p in packages])
    assert "var/lib/dpkg/status" not in by and "usr/share/doc/base-files/README" not in by
    assert [line.split("\t")[0] for line in (built / "packages.txt").read_text().splitlines()] == packages
    assert "etc/ld.so.cache" not in by, "no libraries, no linker cache"


def test_sbom_and_lock(built: Path) -> None:
    sbom = json.loads((built / "sbom.spdx.json").read_text())
    debs = {p["name"]: p for p in sbom["packages"] if p["SPDXID"].startswith("SPDXRef-Package-deb")}
    assert sorted(debs) == ["base-files", "ca-certificates", "owned", "tzdata"]
    assert debs["base-files"]["licenseDeclared"] == "GPL-2.0-or-later"
    assert (
        debs["tzdata"]["externalRefs"][0]["referenceLocator"]
        == "pkg:deb/debian/tzdata@2025a?arch=amd64&distro=debian-fixture"
    )
    lock = json.loads((built / "lock.json").read_text())
    assert sorted(p["name"] for p in lock["packages"]) == sorted(debs)
    build = json.loads((built / "build.json").read_text())
    assert build["recipe"]["scripts"] is False
    assert "configure" not in build["timings"] and "ld.so.cache" in build["timings"]
    files = {p.name for p in built.iterdir()} - {"build.json"}
    assert set(build["files"]) == files and {"image.tar", "rootfs.tar.gz"} <= files
    for name, digest in build["files"].items():
        assert digest == "sha256:" + hashlib.sha256((built / name).read_bytes()).hexdigest(), name


def test_root_builds_the_same_bytes(scene: Scene, built: Path, tmp_path: Path) -> None:
    out = tmp_path / "out-root"
    proc = scene.build(out, as_nobody=False, cache=tmp_path / "cache")
    assert proc.returncode == 0, proc.stderr
    for name in ("image.tar", "rootfs.tar.gz", "lock.json", "sbom.spdx.json", "packages.txt"):
        assert (out / name).read_bytes() == (built / name).read_bytes(), name
