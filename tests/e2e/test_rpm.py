"""The RPM family end to end, as the Debian recipes are tested: the miniature distribution of real programs
(`tests/fixtures/rpmdistro.py`: the host's shell, coreutils and rpm, packaged, signed, published with a signed
repomd.xml) served on 127.0.0.1 as AlmaLinux 9's BaseOS and built through the command line; the image run by
the real Docker Engine, whose own rpm reads the database written at build time. Builds are shared within the
module (one pytest-xdist group)."""

import contextlib
import hashlib
import json
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bootstrap.host import kepttree
from bootstrap.host.cache import write_derived
from bootstrap.rpm import filecaps, keptdb
from bootstrap.rpm.rpmdb import DB
from bootstrap.sign import keys
from tests.conftest import Serve
from tests.e2e.conftest import bootstrap, ensure_binfmt, image_index, need_tool, run, unique_tag
from tests.e2e.test_rootless import builder  # noqa: F401 - the fixture: an ordinary user with subordinate ids
from tests.e2e.users import User, as_user
from tests.faults.proxy import Fault, FaultProxy
from tests.fixtures import rpmdistro, trivy
from tests.fixtures.gpg import GpgKey
from tests.fixtures.rpmrepo import RpmRepo, Spec, dnf_argv, left_running
from tests.fixtures.server import Server
from tests.records.signed_build import PASSWORD, signing_env
from tests.registry.servers import Registry
from tests.rpm.conftest import need_tools

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("rpm-e2e")]

ALMA = "9/BaseOS/x86_64/os"
"""Where AlmaLinux 9's BaseOS is under its tree (bootstrap/rpm/distros.py)."""
TAG = unique_tag("almalinux-miniature")
"""One name for every build of the module: the name is in the image's index, so the bytes compare."""
SBOMS = ("--sbom-format", "cyclonedx", "--sbom-format", "spdx", "--sbom-format", "spdx3")


@dataclass(frozen=True)
class Miniature:
    """The miniature on 127.0.0.1, and its recipe and key in a directory any user can read."""

    url: str
    recipe: Path
    tree: Path

    def args(self, cache: Path) -> list[str]:
        return ["--arch", "amd64", "--mirror", self.url, "--cache-dir", str(cache)]

    def build(self, out: Path, cache: Path, *extra: str, check: bool = True) -> Any:
        argv = ["build", str(self.recipe), *self.args(cache), "--tag", TAG, "-o", str(out), "-q", *SBOMS, *extra]
        return bootstrap(*argv, check=check)


@pytest.fixture(scope="module")
def miniature(
    tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey, serve_session: Serve, as_root: None
) -> Iterator[Miniature]:
    need_tools("rpmbuild", "rpmsign", "createrepo_c", "rpm")
    tree = tmp_path_factory.mktemp("rpm-e2e-tree")
    rpmdistro.build(tree / ALMA, gpg_key)
    shared = Path(tempfile.mkdtemp(prefix="bootstrap-rpm-recipe-"))
    shared.chmod(0o755)
    try:
        gpg_key.export(shared / "fixture-key.asc", armor=True)
        include = ", ".join(f'"{n}"' for n in rpmdistro.REQUEST)
        recipe = shared / "miniature.toml"
        recipe.write_text(
            f'distribution = "almalinux"\nsuite = "9"\n\n[archive]\nkeyring = "fixture-key.asc"\n'
            f'signers = ["{gpg_key.fingerprint}"]\n\n[packages]\ninclude = [{include}]\n\n'
            '[rpm]\nrepos = ["baseos"]\ndirs = ["/run/lock/subsys"]\ntmpfiles = ["*"]\nimport-key = true\n\n'
            '[rpm.modes]\n"/run/lock/subsys" = "0700"\n\n[rpm.append]\n"/etc/fixture.conf" = "appended\\n"\n\n'
            '[rpm.dates]\n"/etc/BUILDTIME" = "%Y%m%d_%H%M"\n\n[rpm.hardlinks]\n"/usr/bin/list" = "/usr/bin/ls"\n\n'
            '[[groups]]\nname = "sgx"\ngid = 996\npassword = "!*"\n\n'
            '[[users]]\nname = "svc"\nuid = 995\ngroup = "sgx"\nhome = "/"\nshell = "/sbin/nologin"\nsystem = true\n'
        )
        for f in shared.iterdir():
            f.chmod(0o644)
        yield Miniature(serve_session(tree), recipe, tree)
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.fixture(scope="module")
def first(miniature: Miniature, tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("rpm-first")
    miniature.build(base / "out", base / "cache")
    return base / "out"


def _cache_of(out: Path) -> Path:
    return out.parent / "cache"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _lock(out: Path) -> dict[str, Any]:
    return json.loads((out / "lock.json").read_text())  # type: ignore[no-any-return]


# --- 1. the image in the real Docker Engine ------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(first: Path, docker: Any) -> str:
    out = docker("load", "-i", str(first / "image.tar")).stdout
    assert f"Loaded image: {TAG}" in out, out
    docker.created.append(TAG)
    return TAG


def test_rpm_in_the_container_lists_exactly_the_locked_set(
    loaded: str, first: Path, docker: Any, gpg_key: GpgKey
) -> None:
    listed = docker("run", "--rm", loaded, "rpm", "-qa", "--qf", "%{NAME} %{EPOCHNUM}:%{VERSION}-%{RELEASE} %{ARCH}\\n")
    locked = {
        f"{p['name']} {p['version'] if ':' in p['version'] else '0:' + p['version']} {p['architecture']}"
        for p in _lock(first)["packages"]
    }
    keys = [line for line in listed.stdout.splitlines() if line.startswith("gpg-pubkey ")]
    assert sorted(set(listed.stdout.splitlines()) - set(keys)) == sorted(locked)
    assert {line.split()[0] for line in locked} == set(rpmdistro.INSTALLED)
    # rpm.import-key: the release package's key file (the fixture's key), as rpm names an imported key
    (key,) = keys
    assert key.split()[1].startswith(f"0:{gpg_key.fingerprint[-8:].lower()}-"), key


def test_rpm_verifies_every_package_clean(loaded: str, first: Path, docker: Any) -> None:
    """Digests, modes, owners, links and file capabilities (`P`: coreutils' ls-net has them, which the image's
    layer carries and Docker sets back) as the headers say."""
    verified = docker("run", "--rm", loaded, "rpm", "-V", "-a", check=False)
    assert (verified.returncode, verified.stdout, verified.stderr) == (0, "", "")
    with tarfile.open(first / "rootfs.tar.gz") as tar:
        headers = tar.getmember(f"usr/bin/{rpmdistro.CAPPED[0]}").pax_headers
    value = headers[f"SCHILY.xattr.{filecaps.ATTRIBUTE}"].encode("utf-8", "surrogateescape")
    assert value == filecaps.attribute(rpmdistro.CAPPED[1], "coreutils")


def test_dnf_reads_the_image_and_installs_through_its_repository_files(
    miniature: Miniature, first: Path, tmp_path: Path
) -> None:
    """dnf over the image's tree (its rootfs tarball, unpacked), with the image's own repository files: it reads
    the database the build wrote (the locked set, installed), and installs another package from the mirror the
    user gave, checking the metadata and package signatures with the release's key the image holds; rpm then
    verifies every package clean."""
    root = tmp_path / "root"
    root.mkdir()
    untar = ["tar", "-xzf", str(first / "rootfs.tar.gz"), "-C", str(root), "--numeric-owner"]
    run([*untar, "--xattrs", "--xattrs-include=security.capability"])  # coreutils' file capabilities
    repos = (root / "etc/yum.repos.d/almalinux-baseos.repo").read_text()
    assert f"baseurl={miniature.url}/$releasever/BaseOS/$basearch/os/" in repos and "repo_gpgcheck=1" in repos
    # Debian's rpm keeps its database in ~/.rpmdb; the image's (EL 9's) in /var/lib/rpm: the host's dnf and rpm
    # are given that path as the image's rpm has it
    home = tmp_path / "home"
    home.mkdir()
    (home / ".rpmmacros").write_text("%_dbpath /var/lib/rpm\n")
    env = {**os.environ, "HOME": str(home)}
    dnf = ["dnf", "-y", "-q", "--installroot", str(root), "--releasever", "9", "--disablerepo=*", "--enablerepo=baseos"]
    dnf += ["--setopt=install_weak_deps=False", "--disableplugin=*", "--setopt=tsflags=nodocs,noscripts"]
    dnf += [f"--setopt=baseos.gpgkey=file://{root}{rpmdistro.RELEASE_KEY}"]
    listed = run(dnf_argv([*dnf, "repoquery", "--installed", "--qf", "%{name}"], str(root)), env=env).stdout.split()
    assert sorted(listed) == sorted({p["name"] for p in _lock(first)["packages"]})
    run(dnf_argv([*dnf, "install", "coreutils-doc"], str(root)), env=env)
    assert left_running(str(root)) == [], "dnf left a gpg-agent running"
    names = run(["rpm", "--root", str(root), "-qa", "--qf", "%{NAME}\\n"], env=env).stdout.split()
    assert "coreutils-doc" in names and "glibc" in names
    verified = run(["rpm", "--root", str(root), "-V", "-a"], check=False, env=env)
    assert (verified.returncode, verified.stdout) == (0, ""), verified.stdout + verified.stderr


def test_el10_keeps_the_database_where_its_rpm_reads_it(
    miniature: Miniature, tmp_path: Path, gpg_key: GpgKey, serve: Serve, docker: Any
) -> None:
    """The miniature as AlmaLinux 10, whose rpm keeps the database in /usr/lib/sysimage/rpm (its macros say so):
    the build writes it there and nothing in /var/lib/rpm, and the image's rpm reads it and verifies every
    package clean."""
    tree = tmp_path / "tree"
    shutil.copytree(miniature.tree / ALMA, tree / "10/BaseOS/x86_64/os")
    (rpm,) = [s for s in rpmdistro.specs() if s.name == "rpm"]
    macros = rpm.files["/etc/rpm/macros"].replace("%%_dbpath /var/lib/rpm", "%%_dbpath /usr/lib/sysimage/rpm")
    assert macros != rpm.files["/etc/rpm/macros"]
    el10 = replace(rpm, release=f"{rpm.release}.el10", files={**rpm.files, "/etc/rpm/macros": macros})
    repo = RpmRepo(tree / "10/BaseOS/x86_64/os", gpg_key)
    repo.build([el10])
    repo.publish()
    text = miniature.recipe.read_text().replace('suite = "9"', 'suite = "10"')
    # the fixture's release package holds release 9's key file: no import
    recipe = tmp_path / "el10.toml"
    recipe.write_text(text.replace("import-key = true", "import-key = false"))
    shutil.copy(miniature.recipe.parent / "fixture-key.asc", tmp_path / "fixture-key.asc")
    out, tag = tmp_path / "out", unique_tag("almalinux-miniature-10")
    args = ["--arch", "amd64", "--mirror", serve(tree), "--cache-dir", str(tmp_path / "cache"), "--tag", tag]
    bootstrap("build", str(recipe), *args, "-o", str(out), "-q")
    assert any(p["name"] == "rpm" and p["version"].endswith(".el10") for p in _lock(out)["packages"])
    docker("load", "-i", str(out / "image.tar"))
    docker.created.append(tag)
    script = "rpm --eval %_dbpath; ls -A /usr/lib/sysimage/rpm; echo --; ls -A /var/lib/rpm; echo --; rpm -qa"
    said = docker("run", "--rm", tag, "sh", "-c", script + " --qf '%{NAME}\\n'").stdout.split("--\n")
    assert said[0].split() == ["/usr/lib/sysimage/rpm", "rpmdb.sqlite"] and said[1] == "", said
    assert sorted(said[2].split()) == sorted(rpmdistro.INSTALLED)
    verified = docker("run", "--rm", tag, "rpm", "-V", "-a", check=False)
    assert (verified.returncode, verified.stdout, verified.stderr) == (0, "", "")


def test_scriptlets_ran_in_the_build(loaded: str, docker: Any) -> None:
    """The markers the sandboxed scriptlets left: %pre (shell and Lua), %post with its argument, the trigger."""
    shown = docker("run", "--rm", loaded, "cat", f"{rpmdistro.MARKERS}/shell.post", f"{rpmdistro.MARKERS}/rpm.trigger")
    assert shown.stdout.splitlines() == ["shell post 1", "rpm triggered by shell 1 1"]
    listed = docker("run", "--rm", loaded, "ls", rpmdistro.MARKERS).stdout.split()
    assert {"setup.lua", "coreutils.pre", "coreutils.post", "coreutils.posttrans", "ldconfig.paths"} <= set(listed)


def test_the_builds_finish_steps_are_in_the_image(loaded: str, first: Path, docker: Any) -> None:
    """The recipe's `mkdir -p` and `chmod`, its `>>`, its system account as `useradd -r` makes it (Red Hat's `!!`, no
    ageing) and setup's tmpfiles.d file applied: a copy, a file with its owner, a directory, a link; no boot line."""
    script = (
        "for f in /root/.fixturerc /var/log/fixture.log /etc/fixture.conf /etc/fixture-release /etc/BUILDTIME; do"
        " cat $f; echo; done;"
        " ls -ldn /run/fixture /run/lock/subsys /var/log/fixture.log; ls /run /var/lib;"
        " ls -i /usr/bin/ls /usr/bin/list;"
        " cat /etc/passwd /etc/shadow /etc/group"
    )
    out = docker("run", "--rm", loaded, "/bin/sh", "-c", script).stdout.splitlines()
    assert {"# root's rc, copied by tmpfiles", "made by tmpfiles", "appended"} <= set(out), out
    assert 'NAME="AlmaLinux (bootstrap test miniature)"' in out, "the link to os-release"
    assert time.strftime("%Y%m%d_%H%M", time.gmtime(_lock(first)["epoch"])) in out, "BUILDTIME: the epoch's date"
    listed = {line.split()[-1]: line.split()[:4] for line in out if line.startswith(("drw", "-rw"))}
    assert listed["/run/fixture"] == ["drwxr-x---", listed["/run/fixture"][1], "0", "901"]
    assert listed["/run/lock/subsys"][0] == "drwx------"
    assert listed["/var/log/fixture.log"][0::2] == ["-rw-r-----", "901"]
    assert "fixture-boot" not in out and not any(line.startswith("fixture-") for line in out), out
    assert "svc:x:995:996::/:/sbin/nologin" in out and "sgx:x:996:" in out
    inodes = {line.split()[1]: line.split()[0] for line in out if line.endswith(("/usr/bin/ls", "/usr/bin/list"))}
    assert len(inodes) == 2 and len(set(inodes.values())) == 1, f"one file, two names: {inodes}"
    assert any(re.fullmatch(r"svc:!!:\d+::::::", line) for line in out), out


def test_the_account_files_backups_are_from_before_the_accounts(loaded: str, docker: Any) -> None:
    """The RPM family keeps shadow-utils' backups of the account files the recipe's accounts changed: what they
    held before the accounts (setup's own lines), as AlmaLinux's images have them."""
    out = docker("run", "--rm", loaded, "/bin/sh", "-c", "cat /etc/group-; echo --; cat /etc/passwd-").stdout
    group, passwd = out.split("--\n")
    assert group == "root:x:0:\nfixture:x:901:\n" and passwd.startswith("root:x:0:0:"), out
    assert "sgx" not in out and "svc" not in out, out


# --- 2. reproducible, with and without root -----------------------------------------------------------------


def test_two_builds_are_identical(miniature: Miniature, first: Path, tmp_path: Path) -> None:
    """Another build from another (empty) cache: every output the same bytes."""
    miniature.build(tmp_path / "out", tmp_path / "cache")
    for name in ("image.tar", "rootfs.tar.gz", "lock.json", "packages.txt", "sbom.cdx.json", "sbom.spdx.json"):
        assert _sha256(tmp_path / "out" / name) == _sha256(first / name), f"{name} differs"


def test_an_ordinary_user_builds_the_same_bytes_as_root(
    miniature: Miniature,
    first: Path,
    builder: User,  # noqa: F811 - the fixture
    runtime: tuple[str, Path],
) -> None:
    out = builder.home / "out"
    args = miniature.args(builder.home / "cache")
    proc = as_user(builder, runtime, "build", str(miniature.recipe), *args, "--tag", TAG, "-o", str(out), "-q", *SBOMS)
    assert proc.returncode == 0, proc.stderr
    for name in ("image.tar", "rootfs.tar.gz", "lock.json", "sbom.cdx.json"):
        assert _sha256(out / name) == _sha256(first / name), f"{name} differs from the root build"
    assert all(p.stat().st_uid == builder.uid for p in [out, *out.iterdir()])


# --- 3. lock, offline, check, verify ------------------------------------------------------------------------


def test_build_from_the_lock_gives_the_same_bytes(miniature: Miniature, first: Path, tmp_path: Path) -> None:
    lock = tmp_path / "miniature.lock.json"
    bootstrap("lock", str(miniature.recipe), *miniature.args(tmp_path / "cache"), "-o", str(lock))
    assert json.loads(lock.read_text())["packages"] == _lock(first)["packages"]
    miniature.build(tmp_path / "out", tmp_path / "cache", "--lock", str(lock))
    assert _sha256(tmp_path / "out" / "image.tar") == _sha256(first / "image.tar")


def test_a_build_from_the_lock_names_a_package_the_mirror_no_longer_has(
    miniature: Miniature, first: Path, tmp_path: Path, gpg_key: GpgKey, serve: Serve
) -> None:
    """The mirror moved coreutils on to 1:1.0-2 and dropped 1:1.0-1, which the lock pins: one line naming it, and
    a hint for RPM distributions (their vaults), not Debian's snapshot archive."""
    tree = tmp_path / "tree"
    shutil.copytree(miniature.tree, tree, symlinks=True)
    (old,) = (tree / ALMA / "Packages").glob("coreutils-1.0-1.*.rpm")
    old.unlink()
    (coreutils,) = [s for s in rpmdistro.specs() if s.name == "coreutils"]
    repo = RpmRepo(tree / ALMA, gpg_key)
    repo.build([replace(coreutils, release="2")], payload=rpmdistro.PAYLOAD)
    repo.publish(revision=1700000100)
    args = ["--arch", "amd64", "--mirror", serve(tree), "--cache-dir", str(tmp_path / "cache")]
    proc = bootstrap(
        "build", str(miniature.recipe), *args, "--lock", str(first / "lock.json"), "-o", str(tmp_path / "out"),
        check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and not (tmp_path / "out").exists()
    assert "error: the mirror no longer carries 1 locked package(s): coreutils 1:1.0-1" in proc.stderr
    assert "vault" in proc.stderr and "snapshot" not in proc.stderr


@pytest.fixture
def faulty(miniature: Miniature) -> Iterator[FaultProxy]:
    """The fault proxy in front of the miniature's mirror (tests/faults/proxy.py)."""
    proxy = FaultProxy(miniature.url)
    yield proxy
    proxy.stop()


def _through(miniature: Miniature, proxy: FaultProxy, out: Path, cache: Path, check: bool = True) -> Any:
    """A build with the proxy as its mirror (which the image's repository files then name)."""
    args = ["--arch", "amd64", "--mirror", proxy.url, "--cache-dir", str(cache), "--tag", TAG, "-q", *SBOMS]
    return bootstrap("build", str(miniature.recipe), *args, "-o", str(out), check=check)


def test_transient_mirror_faults_are_retried_to_the_same_bytes(
    miniature: Miniature, faulty: FaultProxy, tmp_path: Path
) -> None:
    """503 on the first request of every metadata file (repomd.xml, its signature, the indexes), and each
    package's body cut once halfway: an empty-cache build retries through all of it to the bytes of a build
    through the same mirror undisturbed."""
    _through(miniature, faulty, tmp_path / "undisturbed", tmp_path / "cache-undisturbed")
    faulty.add(Fault("status", r"/repodata/", status=503, per_path=1, times=None))
    faulty.add(Fault("reset", r"\.rpm$", at=0.5, per_path=1, times=None))
    _through(miniature, faulty, tmp_path / "out", tmp_path / "cache")
    assert faulty.count("status") >= 4 and faulty.count("reset") == len(rpmdistro.INSTALLED)
    assert _sha256(tmp_path / "out" / "image.tar") == _sha256(tmp_path / "undisturbed" / "image.tar")


def test_a_package_corrupted_in_transit_fails_cleanly_and_leaves_the_cache_sound(
    miniature: Miniature, faulty: FaultProxy, tmp_path: Path
) -> None:
    """Every answer for coreutils' package has bytes flipped (same length): one line naming it, nothing written,
    and the next build from the same cache through the healthy mirror gives the undisturbed bytes."""
    _through(miniature, faulty, tmp_path / "undisturbed", tmp_path / "cache-undisturbed")
    faulty.add(Fault("wrong", r"/coreutils-1\.0-1\.x86_64\.rpm$", times=None))
    cache, out = tmp_path / "cache", tmp_path / "out"
    failed = _through(miniature, faulty, out, cache, check=False)
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error: ")]
    assert failed.returncode != 0 and len(errors) == 1 and "coreutils" in errors[0], failed.stderr
    assert not out.exists() and faulty.count("wrong") >= 1
    faulty.clear()
    _through(miniature, faulty, out, cache)
    assert _sha256(out / "image.tar") == _sha256(tmp_path / "undisturbed" / "image.tar")


def test_offline_from_the_cache(miniature: Miniature, first: Path, tmp_path: Path, serve: Serve) -> None:
    """--offline: a build from a copy of the mirror fills a cache, the copy is removed, and a build from that
    cache alone gives the same bytes (the copy's URL is another: it is in the image's repository files)."""
    shutil.copytree(miniature.tree, tmp_path / "tree", symlinks=True)
    copy = Miniature(serve(tmp_path / "tree"), miniature.recipe, tmp_path / "tree")
    copy.build(tmp_path / "online", tmp_path / "cache")
    shutil.rmtree(tmp_path / "tree")
    copy.build(tmp_path / "offline", tmp_path / "cache", "--offline")
    assert _sha256(tmp_path / "offline" / "image.tar") == _sha256(tmp_path / "online" / "image.tar")
    gone = copy.build(tmp_path / "online-again", tmp_path / "cache", check=False)
    assert gone.returncode != 0, "the copy of the mirror is gone: only --offline builds"


def test_a_mirror_that_asks_for_a_login_gets_it_from_netrc_and_nothing_records_it(
    miniature: Miniature, first: Path, tmp_path: Path
) -> None:
    """A mirror behind HTTP basic authentication: a user name and password in the URL are refused in one line
    that shows no password (they would be in the image's repository files and every record); without them the
    mirror's 401 fails the build; from $NETRC the build reads the mirror and gives the image a mirror of the same
    URL gives, and no output holds the password."""
    secret = f"S3cret-{os.getpid()}"
    with Server(miniature.tree, login=("builder", secret)) as server:
        netloc = server.url.removeprefix("http://")
        guarded = Miniature(server.url, miniature.recipe, miniature.tree)
        inline = replace(guarded, url=f"http://builder:{secret}@{netloc}")
        said = inline.build(tmp_path / "inline", tmp_path / "cache", check=False)
        assert said.returncode != 0 and not (tmp_path / "inline").exists()
        (line,) = [x for x in said.stderr.splitlines() if x.startswith("error:")]
        assert "user name or password" in line and secret not in said.stderr and "~/.netrc" in said.stderr
        refused = guarded.build(tmp_path / "refused", tmp_path / "cache", check=False)
        assert refused.returncode != 0 and "401" in refused.stderr and not (tmp_path / "refused").exists()
        netrc = tmp_path / "netrc"
        netrc.write_text(f"machine 127.0.0.1 login builder password {secret}\n")
        netrc.chmod(0o600)
        os.environ["NETRC"] = str(netrc)
        try:
            guarded.build(tmp_path / "out", tmp_path / "cache")
        finally:
            del os.environ["NETRC"]
    out = tmp_path / "out"
    assert any(x.startswith("/9/BaseOS/") for x in server.requests)
    with tarfile.open(out / "rootfs.tar.gz") as tar:
        repo_file = tar.extractfile("etc/yum.repos.d/almalinux-baseos.repo")
        assert repo_file is not None and f"baseurl={server.url}/" in repo_file.read().decode()
        for member in tar:
            data = tar.extractfile(member) if member.isfile() else None
            assert data is None or secret.encode() not in data.read(), member.name
    for f in out.iterdir():
        assert secret.encode() not in f.read_bytes(), f.name


def test_check_says_no_rebuild_then_a_rebuild_is_due(
    miniature: Miniature, first: Path, tmp_path: Path, gpg_key: GpgKey, serve: Serve
) -> None:
    same = bootstrap("check", str(miniature.recipe), "--against", str(first), *miniature.args(tmp_path / "c1"))
    assert same.returncode == 0, same.stdout + same.stderr
    tree = tmp_path / "tree"
    shutil.copytree(miniature.tree, tree, symlinks=True)
    (coreutils,) = [s for s in rpmdistro.specs() if s.name == "coreutils"]
    repo = RpmRepo(tree / ALMA, gpg_key)
    repo.build([replace(coreutils, release="2")], payload=rpmdistro.PAYLOAD)
    repo.publish(revision=1700000100)
    newer = Miniature(serve(tree), miniature.recipe, tree)
    due = bootstrap("check", str(miniature.recipe), "--against", str(first), *newer.args(tmp_path / "c2"), check=False)
    assert due.returncode == 10, due.stdout + due.stderr
    assert "coreutils" in due.stdout and "1:1.0-2" in due.stdout, due.stdout


def _derived(cache: Path) -> dict[str, int]:
    """Every file of the cache's derived areas, with its mtime (what taking it marks)."""
    return {
        str(p.relative_to(cache)): p.stat().st_mtime_ns
        for area in ("expanded", "gzip", "layers", "verdicts", "parsed", "rpmdb", kepttree.AREA)
        for p in sorted((cache / area).rglob("*"))
        if p.is_file()
    }


def test_verify_rebuilds_bit_for_bit(miniature: Miniature, first: Path) -> None:
    """The rebuild takes nothing from the derived areas, nor adds to them: the decompressed payloads, kept gzip
    members and layers, signature verdicts, listings and rpm databases the builds left are neither read nor
    written."""
    cache = _cache_of(first)
    before = _derived(cache)
    assert any(name.startswith("expanded/") and name.endswith(".cpio") for name in before), "the builds kept payloads"
    proc = bootstrap(
        "verify", str(first), "--recipe", str(miniature.recipe), "--mirror", miniature.url, "--cache-dir", str(cache),
    )  # fmt: skip
    assert "verified" in proc.stdout
    assert _derived(cache) == before


TAKEN = "amd64: this package set gave one layer twice: what the cache kept is taken, the layer checks it"
AGAIN = ": built again, checking all the cache kept"


def _said(miniature: Miniature, first: Path, out: Path, cache: Path) -> str:
    """A build's messages at -v, after checking its image is the first build's, and its records name its files'
    digests (a settled build's image tar hashed from before its layer was packed: `oci.Prehash`)."""
    argv = ["build", str(miniature.recipe), *miniature.args(cache), "--tag", TAG, "-o", str(out), "-v", *SBOMS]
    said = bootstrap(*argv).stderr
    files = json.loads((out / "build.json").read_text())["files"]
    for name in ("image.tar", "rootfs.tar.gz"):
        assert _sha256(out / name) == _sha256(first / name), f"{name} differs from the first build's"
        assert files[name] == "sha256:" + _sha256(out / name), f"build.json's digest of {name} is not its own"
    return said


def test_a_settled_package_set_takes_what_the_cache_kept_and_its_layer_catches_a_change(
    miniature: Miniature, first: Path, tmp_path: Path
) -> None:
    """Two builds that give one layer settle it; the third takes the cache's decompressed payloads without hashing
    them, the layer checking them. A payload changed in the cache (the same length, a file's bytes) makes the layer
    another one, and one cut short fails to unpack: each time that build is done again checking everything, the
    payload is made again from its package, and the image is the first build's. (The tree the third build kept is
    removed first each time: a build that takes it reads no payload.)"""
    cache = tmp_path / "cache"
    builds = [_said(miniature, first, tmp_path / f"out{n}", cache) for n in range(3)]
    assert [TAKEN in s for s in builds] == [False, False, True] and not any(AGAIN in s for s in builds)
    payload = max((cache / "expanded").glob("*.cpio"), key=lambda p: p.stat().st_size)
    original = payload.read_bytes()
    middle = len(original) // 2
    for n, changed in enumerate([original[:middle] + bytes([original[middle] ^ 0xFF]) + original[middle + 1 :],
                                 original[: middle]]):  # fmt: skip
        with open(payload, "r+b") as f:  # in place: the file the build made, its owner and mode kept
            f.truncate(0)
            f.write(changed)
        shutil.rmtree(cache / kepttree.AREA)
        said = _said(miniature, first, tmp_path / f"changed{n}", cache)
        assert TAKEN in said and AGAIN in said, said
        assert _sha256(payload) == payload.name.removesuffix(".cpio"), "made again from its package"
    assert AGAIN not in _said(miniature, first, tmp_path / "after", cache), "the layer stays settled: the cache changed"


KEPT_TREE = "amd64: the tree this package set's unpack left is taken from the cache"


def _tree_files(tree: Path) -> dict[str, str]:
    return {str(p.relative_to(tree)): _sha256(p) for p in sorted(tree.rglob("*")) if p.is_file() and not p.is_symlink()}


def test_a_settled_package_set_starts_from_the_tree_it_kept_and_a_changed_one_is_built_again(
    miniature: Miniature, first: Path, tmp_path: Path
) -> None:
    """The first settled build keeps the tree its unpack left; the next starts from it, through an overlay that
    takes every change (the kept tree is never written: the scriptlets' markers are in the image, not in it), and
    its image is the first build's. A file of the kept tree changed in the cache makes the layer another one: that
    build is done again checking everything, the kept tree is removed, and the image is still the first build's;
    the next build keeps a tree again, and the one after starts from it. A build that fails for itself (its
    scripts out of time, done again without the tree, failing as well) leaves the tree to the next."""
    cache = tmp_path / "cache"
    builds = [_said(miniature, first, tmp_path / f"out{n}", cache) for n in range(4)]
    assert [KEPT_TREE in s for s in builds] == [False, False, False, True] and not any(AGAIN in s for s in builds)
    (entry,) = (cache / kepttree.AREA).iterdir()
    tree = entry / kepttree.TREE
    before = _tree_files(tree)
    assert "usr/bin/cat" in before and not (tree / rpmdistro.MARKERS.strip("/") / "setup.lua").exists()
    with tarfile.open(tmp_path / "out3" / "rootfs.tar.gz") as layer:
        assert rpmdistro.MARKERS.strip("/") + "/setup.lua" in layer.getnames(), "the scriptlets ran on the overlay"
    assert _tree_files(tree) == before, "the build wrote nothing into the kept tree"
    cat = tree / "usr" / "bin" / "cat"
    data = bytearray(cat.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with open(cat, "r+b") as f:  # in place: the same inode, owner, mode and size
        f.write(data)
    said = _said(miniature, first, tmp_path / "changed", cache)
    assert KEPT_TREE in said and AGAIN in said, said
    assert not entry.exists(), "the tree that gave another layer is removed"
    later = [_said(miniature, first, tmp_path / f"later{n}", cache) for n in range(2)]
    assert [KEPT_TREE in s for s in later] == [False, True] and not any(AGAIN in s for s in later)
    (entry,) = (cache / kepttree.AREA).iterdir()
    argv = ["build", str(miniature.recipe), *miniature.args(cache), "--tag", TAG, "-o", str(tmp_path / "x"), "-v"]
    failed = bootstrap(*argv, check=False, env={"BOOTSTRAP_SCRIPT_TIMEOUT": "0.001"})
    assert failed.returncode != 0 and KEPT_TREE in failed.stderr and AGAIN in failed.stderr, failed.stderr
    assert entry.exists(), "a build failing for itself, as again without the tree, leaves the tree"
    assert KEPT_TREE in _said(miniature, first, tmp_path / "after", cache)


def test_a_kept_tree_the_kernel_will_not_overlay_is_unpacked_instead(
    miniature: Miniature, first: Path, tmp_path: Path
) -> None:
    """A cache on an overlay that is itself on an overlay: the kernel stacks no third, so the tree kept there
    cannot be seen through one. The build says so and unpacks the packages as ever; its image is the first
    build's."""
    stack = tmp_path / "stack"
    for name in ("base", "mid", "top", "u1", "w1", "u2", "w2"):
        (stack / name).mkdir(parents=True)
    mounted: list[Path] = []
    try:
        for lower, upper, work, point in (("base", "u1", "w1", "mid"), ("mid", "u2", "w2", "top")):
            options = f"lowerdir={stack / lower},upperdir={stack / upper},workdir={stack / work}"
            run(["mount", "-t", "overlay", "-o", options, "overlay", str(stack / point)])
            mounted.insert(0, stack / point)
        cache = stack / "top" / "cache"
        builds = [_said(miniature, first, tmp_path / f"out{n}", cache) for n in range(4)]
        assert (cache / kepttree.AREA).is_dir() and any((cache / kepttree.AREA).iterdir()), "the third kept its tree"
        assert "cannot mount overlay" in builds[3] and "the packages are unpacked instead" in builds[3], builds[3]
        assert KEPT_TREE not in builds[3] and AGAIN not in builds[3]
    finally:
        for mount_point in mounted:
            run(["umount", str(mount_point)])


def test_a_kept_rpm_database_forged_with_the_users_key_goes_into_a_build_and_verify_names_it(
    miniature: Miniature, first: Path, tmp_path: Path
) -> None:
    """The rpm database kept for a package set is a derived file the user's key proves. One forged by someone
    holding that key (the user's own account; here the release key's gpg-pubkey header taken out, so that the
    image's rpm would no longer check the distribution's signatures) goes into the next build of that set; `verify`
    has the host's rpm write the database afresh and fails, naming the outputs. Forged without the key, it is not
    taken."""
    cache = tmp_path / "cache"
    miniature.build(tmp_path / "a", cache)
    area = cache / keptdb.AREA
    (slot,) = area.iterdir()
    kept = keptdb.find(area, slot.name)
    assert kept is not None, "the build kept its database"
    work = tmp_path / "forge"
    work.mkdir()
    kept.write(work)
    with contextlib.closing(sqlite3.connect(work / DB)) as db, db:
        (hnum,) = db.execute("SELECT max(hnum) FROM Packages").fetchone()
        db.execute("DELETE FROM Packages WHERE hnum = ?", (hnum,))
    forged = [kept.keys.encode(), "\n".join(kept.files).encode(), *((work / n).read_bytes() for n in kept.files)]
    with pytest.MonkeyPatch.context() as mp:  # someone who can write the cache but not read the user's key
        mp.setenv("XDG_STATE_HOME", str(tmp_path / "someone-else"))
        write_derived(slot, slot.name, forged)
    miniature.build(tmp_path / "b", cache)
    assert _sha256(tmp_path / "b" / "image.tar") == _sha256(first / "image.tar"), "not taken without the key"
    write_derived(slot, slot.name, forged)
    miniature.build(tmp_path / "c", cache)
    assert _sha256(tmp_path / "c" / "image.tar") != _sha256(first / "image.tar"), "taken: the user's key proves it"
    proc = bootstrap(
        "verify", str(tmp_path / "c"), "--recipe", str(miniature.recipe), "--mirror", miniature.url,
        "--cache-dir", str(cache), check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    said = next(line for line in proc.stderr.splitlines() if line.startswith("NOT reproducible"))
    assert "rootfs.tar.gz" in said and "image.tar" in said, proc.stderr


def test_verify_refuses_a_mirror_serving_other_bytes_for_a_locked_package(
    miniature: Miniature, first: Path, tmp_path: Path, gpg_key: GpgKey, serve: Serve
) -> None:
    """The same coreutils NEVRA rebuilt (other bytes, signed by the same key, the metadata republished and signed):
    the lock's sha256 no longer matches, and verify says so in one line, with nothing written beside the build."""
    tree = tmp_path / "tree"
    shutil.copytree(miniature.tree, tree, symlinks=True)
    (coreutils,) = [s for s in rpmdistro.specs() if s.name == "coreutils"]
    repo = RpmRepo(tree / ALMA, gpg_key)
    repo.build([replace(coreutils, post=coreutils.post + "\n: rebuilt")], payload=rpmdistro.PAYLOAD)
    repo.publish(revision=1700000100)
    before = sorted(p.name for p in first.iterdir())
    proc = bootstrap(
        "verify", str(first), "--recipe", str(miniature.recipe), "--mirror", serve(tree),
        "--cache-dir", str(tmp_path / "cache"), check=False,
    )  # fmt: skip
    assert proc.returncode != 0 and "verified" not in proc.stdout
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error")]
    assert line.startswith("error: coreutils 1:1.0-1: sha256 ") and line.endswith(" in the lock"), line
    assert "rebuilt under the same version" in proc.stderr
    assert sorted(p.name for p in first.iterdir()) == before


def test_inspect_says_what_each_package_takes(first: Path) -> None:
    """`bootstrap inspect` reads the image's rpm database: every package with files, its version and size."""
    shown = json.loads(bootstrap("inspect", str(first), "--json").stdout)["packages"]
    sizes = {p["name"]: (p["version"], p["size"]) for p in shown}
    with_files = set(rpmdistro.INSTALLED) - {"filesystem"}
    assert with_files <= set(sizes) and sizes["coreutils"][0] == "1:1.0-1"
    assert all(sizes[n][1] > 0 for n in with_files - {"almalinux-release", "setup"})


# --- 4. SBOMs -----------------------------------------------------------------------------------------------


def test_sboms_name_each_package_by_its_rpm_purl(first: Path) -> None:
    """`pkg:rpm/<os id>/<name>@<version>-<release>?arch=<arch>&distro=<os id>-<version>[&epoch=<epoch>]` (the purl
    spec's rpm type: the epoch a qualifier), the same in all three SBOMs, the system from the image's os-release."""
    locked = {p["name"]: p for p in _lock(first)["packages"]}

    def expected(name: str) -> str:
        p = locked[name]
        epoch, _, version = p["version"].rpartition(":")
        tail = f"&epoch={epoch}" if epoch else ""
        return f"pkg:rpm/almalinux/{name}@{version}?arch={p['architecture']}&distro=almalinux-9.9{tail}"

    cdx = json.loads((first / "sbom.cdx.json").read_text())
    (system,) = [c for c in cdx["components"] if c["type"] == "operating-system"]
    assert (system["name"], system["version"]) == ("almalinux", "9.9")
    purls = {c["name"]: c["purl"] for c in cdx["components"] if c["type"] != "operating-system"}
    assert purls == {name: expected(name) for name in locked}
    assert purls["coreutils"] == "pkg:rpm/almalinux/coreutils@1.0-1?arch=x86_64&distro=almalinux-9.9&epoch=1"
    spdx = json.loads((first / "sbom.spdx.json").read_text())
    refs = {p["name"]: p["externalRefs"][0]["referenceLocator"] for p in spdx["packages"] if p.get("externalRefs")}
    assert {n: refs[n] for n in locked} == purls
    spdx3 = json.loads((first / "sbom.spdx3.json").read_text())
    graph = [e for e in spdx3["@graph"] if e.get("type") == "software_Package"]
    assert {e["name"]: e.get("software_packageUrl") for e in graph if e["name"] in locked} == purls


def test_trivy_reads_the_sboms(first: Path, tmp_path: Path) -> None:
    """Trivy knows AlmaLinux: it finds the system of the image's os-release and every package, epoch included,
    in the CycloneDX and SPDX 2.3 files (SPDX 3 it does not read yet)."""
    assert trivy.check_build(first, tmp_path / "trivy-cache", "almalinux", "9.9") == len(rpmdistro.INSTALLED)


# --- 5. push, and check against the pushed image ------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    reg = Registry(need_tool("docker-registry"), tmp_path_factory.mktemp("rpm-registry"))
    yield reg
    reg.stop()


def test_push_then_check_against_the_pushed_image(
    miniature: Miniature, first: Path, registry: Registry, tmp_path: Path
) -> None:
    ref = f"{registry.host}/almalinux-miniature:9"
    pushed = bootstrap("push", str(first), ref)
    build = json.loads((first / "build.json").read_text())
    assert build["image"]["manifest_digest"] in pushed.stdout
    checked = bootstrap(
        "check", str(miniature.recipe), "--against", ref, *miniature.args(tmp_path / "cache"), check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _fleet(miniature: Miniature, registry: Registry, tmp_path: Path, repo: str, head: str = "") -> list[str]:
    """The arguments of `bootstrap fleet` over a fleet file (`head` first) pushing the miniature to `repo`."""
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        f'{head}[[image]]\nrecipe = "{miniature.recipe}"\nsuites = ["9"]\narches = ["amd64"]\n'
        f'push = ["{registry.host}/{repo}/almalinux-miniature:{{codename}}"]\n'
    )
    cache = tmp_path / "cache"
    return ["fleet", str(fleet), "-o", str(tmp_path / "out"), "--mirror", miniature.url, "--cache-dir", str(cache)]


def test_a_fleet_of_the_rpm_recipe_pushes_then_pushes_nothing(
    miniature: Miniature, first: Path, registry: Registry, tmp_path: Path
) -> None:
    """`bootstrap fleet` over an RPM recipe: built (the same bytes as the direct build) and pushed with its
    records, then a second run whose check against the registry finds nothing changed."""
    args = _fleet(miniature, registry, tmp_path, "fleet")
    (row,) = json.loads(bootstrap(*args, "--json").stdout)
    assert (row["codename"], row["arch"], row["state"]) == ("9", "amd64", "new")
    (ref,) = row["pushed"]
    assert ref.endswith("/fleet/almalinux-miniature:9")
    direct = json.loads((first / "build.json").read_text())["image"]
    built = next((tmp_path / "out").rglob("build.json"))
    assert json.loads(built.read_text())["image"]["diff_id"] == direct["diff_id"]
    second = bootstrap(*args)
    assert "nothing changed: nothing pushed" in second.stdout and "unchanged" in second.stdout
    checked = bootstrap("check", str(miniature.recipe), "--against", ref, *miniature.args(tmp_path / "empty"))
    assert checked.stdout.startswith("up to date")


def test_a_signing_fleet_trusts_no_unsigned_image_put_under_its_tag(
    miniature: Miniature, first: Path, registry: Registry, tmp_path: Path
) -> None:
    """A fleet with a sign-key decides "unchanged" only on a lock its key vouches for: an unsigned image put
    under its tag (whoever can push there, with a lock naming today's versions) is built and pushed again, with a
    warning, rather than left there as if it were the fleet's."""
    keys.write_pair(tmp_path / "release", keys.generate(), PASSWORD.encode())
    args = _fleet(miniature, registry, tmp_path, "signed-fleet", 'sign-key = "release.key"\n\n')
    cache = tmp_path / "cache"
    env = signing_env()
    (row,) = json.loads(bootstrap(*args, "--json", env=env).stdout)
    assert row["state"] == "new"
    (ref,) = row["pushed"]
    (again,) = json.loads(bootstrap(*args, "--json", env=env).stdout)
    assert again["state"] == "unchanged" and again["pushed"] == []
    miniature.build(tmp_path / "other", cache, "--compression", "none")  # another image, the same lock
    bootstrap("push", str(tmp_path / "other"), ref)  # unsigned
    unsigned = bootstrap("check", str(miniature.recipe), "--against", ref, *miniature.args(cache))
    assert unsigned.stdout.startswith("up to date"), "its lock names today's versions"
    replaced = bootstrap(*args, "--json", env=env)
    (row,) = json.loads(replaced.stdout)
    assert row["state"] == "new" and row["pushed"] == [ref], "the unsigned image was trusted as unchanged"
    assert "not vouched for by the fleet's key" in replaced.stderr
    final = bootstrap(*args, "--json", env=env)
    (last,) = json.loads(final.stdout)
    assert last["state"] == "unchanged", final.stderr


# --- 6. two architectures: x86_64 and aarch64 ---------------------------------------------------------------

ARCHES = {"amd64": "x86_64", "arm64": "aarch64"}
MULTI = (*rpmdistro.REQUEST, "arch-marker")
"""What the two-architecture recipe asks for: the miniature's request and a package saying which architecture
it is."""


@pytest.fixture(scope="module")
def arm64_programs(tmp_path_factory: pytest.TempPathFactory, as_root: None) -> Path:
    """Debian's arm64 dash, coreutils, rpm and the libraries they link to, fetched from the host's mirror (as the
    Debian end-to-end tests fetch theirs) and unpacked: real aarch64 programs for the miniature."""
    from bootstrap.build import download, recipe
    from bootstrap.build.pipeline import resolve_plan
    from bootstrap.build.plan import Options, make_plan

    base = tmp_path_factory.mktemp("arm64-programs")
    (base / "with-rpm.toml").write_text('extends = "debian-slim"\n\n[packages]\ninclude = ["rpm"]\n')
    with_rpm = recipe.load(str(base / "with-rpm.toml"), given=True)
    plan = make_plan(with_rpm, Options(suite="trixie", arch="arm64", cache_dir=base / "cache"))
    _, selection = resolve_plan(plan)
    programs = ("dash", "coreutils", "rpm", "rpm-common", "zlib1g")
    wanted = [p for p in selection.packages if p.name in programs or p.name.startswith("lib")]
    for deb in download.fetch_all(wanted, plan.cache).values():
        run(["dpkg-deb", "-x", str(deb), str(base / "unpacked")])
    return base / "unpacked"


@pytest.fixture(scope="module")
def multi(
    tmp_path_factory: pytest.TempPathFactory,
    miniature: Miniature,
    arm64_programs: Path,
    gpg_key: GpgKey,
    serve_session: Serve,
    registry: Registry,
) -> tuple[Path, str]:
    """A tree whose BaseOS has an x86_64 and an aarch64 repository: the noarch packages, the release package
    built for each, a data package saying which it is, and the shell, coreutils, rpm and their libraries of each
    architecture (the host's for x86_64, Debian's arm64 programs for aarch64), with their scriptlets (setup's Lua
    %pre left out: Lua scriptlets run in the image's rpm). Built for both and pushed: (output directory,
    reference)."""
    ensure_binfmt("aarch64")
    base = tmp_path_factory.mktemp("rpm-multi")
    specs = {s.name: s for s in rpmdistro.specs() if s.arch != "i686"}
    for basearch in ARCHES.values():
        repo = RpmRepo(base / "tree" / f"9/BaseOS/{basearch}/os", gpg_key)
        marker = Spec("arch-marker", arch=basearch, files={"/usr/share/arch-marker": basearch})
        programs = (
            [specs[n] for n in ("glibc", "shell", "coreutils", "rpm", "rpm-libs")]
            if basearch == "x86_64"
            else rpmdistro.foreign_specs(arm64_programs, basearch)
        )
        common = [specs["filesystem"], replace(specs["setup"], pre=""), specs["almalinux-release"]]
        repo.build([*common[:2], replace(common[2], arch=basearch), marker, *programs], payload=rpmdistro.PAYLOAD)
        repo.publish()
    recipe = base / "multi.toml"
    include = ", ".join(f'"{n}"' for n in MULTI)
    text = miniature.recipe.read_text()
    # its release packages carry no key file: no import (the miniature's own build imports one)
    text = text.replace("import-key = true", "import-key = false")
    recipe.write_text(re.sub(r"include = \[.*\]", f"include = [{include}]", text))
    shutil.copy(miniature.recipe.parent / "fixture-key.asc", base / "fixture-key.asc")
    out, ref = base / "out", f"{registry.host}/almalinux-miniature:multi"
    args = ["--arch", "amd64,arm64", "--mirror", serve_session(base / "tree"), "--cache-dir", str(base / "cache")]
    bootstrap("build", str(recipe), *args, "--tag", TAG, "-o", str(out), "-q", "--push", ref)
    return out, ref


def test_two_architectures_make_one_index(multi: tuple[Path, str]) -> None:
    out, _ = multi
    platforms = [m["platform"] for m in image_index(out / "image.tar")["manifests"]]
    assert platforms == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    for arch, basearch in ARCHES.items():
        lock = json.loads((out / f"lock-{arch}.json").read_text())
        assert {p["name"]: p["architecture"] for p in lock["packages"]} == {
            **{n: basearch for n in (*MULTI, "glibc", "rpm-libs")},
            "filesystem": "noarch",
            "setup": "noarch",
        }


def test_each_architecture_has_its_own_rpm_database(multi: tuple[Path, str], tmp_path: Path) -> None:
    """The database of each tree, read by the host's rpm, lists that architecture's packages; the files are
    those of that architecture."""
    for arch, basearch in ARCHES.items():
        tree = tmp_path / arch
        tree.mkdir()
        (rootfs,) = multi[0].glob(f"rootfs-{arch}.tar*")
        run(["tar", "-xf", str(rootfs), "-C", str(tree)])
        assert (tree / "usr/share/arch-marker").read_text().strip() == basearch
        listed = run(["rpm", "--dbpath", str(tree / "var/lib/rpm"), "-qa", "--qf", "%{NAME}.%{ARCH}\\n"])
        expected = {f"{n}.{basearch}" for n in (*MULTI, "glibc", "rpm-libs")}
        expected -= {f"filesystem.{basearch}", f"setup.{basearch}"}
        assert set(listed.stdout.split()) == expected | {"filesystem.noarch", "setup.noarch"}


def test_docker_runs_each_platform_and_its_scriptlets_ran(multi: tuple[Path, str], docker: Any) -> None:
    """Pulled from the registry for each platform: the aarch64 image's own shell and rpm run (through qemu-user):
    its scriptlets ran at build time with that shell, its rpm lists its packages and verifies them clean."""
    _, ref = multi
    docker.created.append(ref)
    for platform, basearch in (("linux/amd64", "x86_64"), ("linux/arm64", "aarch64")):
        docker("pull", "--platform", platform, ref)
        script = f"cat /usr/share/arch-marker {rpmdistro.MARKERS}/shell.post {rpmdistro.MARKERS}/coreutils.post"
        shown = docker("run", "--rm", "--platform", platform, ref, "sh", "-c", script)
        assert shown.stdout.splitlines() == [basearch, "shell post 1", "coreutils post 1"], shown.stdout
        listed = docker("run", "--rm", "--platform", platform, ref, "rpm", "-qa", "--qf", "%{NAME}.%{ARCH}\\n")
        assert {line.rsplit(".", 1)[1] for line in listed.stdout.split()} == {basearch, "noarch"}
        assert len(listed.stdout.split()) == len(MULTI) + 2, listed.stdout
        verified = docker("run", "--rm", "--platform", platform, ref, "rpm", "-V", "-a", check=False)
        assert (verified.returncode, verified.stdout) == (0, ""), verified.stdout
