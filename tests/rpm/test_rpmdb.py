"""The image's rpm database, written by the host's rpm from real packages: `rpm -qa` lists exactly them, `rpm -V -a`
finds the tree as the database says (files left out marked so), and two builds give the same bytes."""

import ctypes
import os
import sqlite3
import stat
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from bootstrap.family.names import Distro
from bootstrap.host.tree import Tree
from bootstrap.rpm import rpmdb
from bootstrap.rpm.distros import DISTROS, SYSIMAGE
from bootstrap.rpm.files import skipped
from bootstrap.rpm.options import JobOptions
from bootstrap.rpm.unpack import unpack_all
from tests.fixtures.gpg import GpgKey
from tests.fixtures.rpmrepo import RpmRepo, Spec
from tests.rpm.conftest import EPOCH, accounts_root, need_tools

OPTIONS = JobOptions(nodocs=True, install_langs=("de_DE",))


def _rpm(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rpm", "--root", str(root), "--dbpath", "/var/lib/rpm", *args], capture_output=True, text=True
    )


def _build(sample: Path, tmp_path: Path, name: str) -> Path:
    root = accounts_root(tmp_path / name)
    (done,) = unpack_all(root, [("sample", sample)], OPTIONS, EPOCH)
    rpmdb.write(Tree(root), "/var/lib/rpm", [(sample, skipped(list(done.files), OPTIONS))], EPOCH, "x86_64")
    return root


def test_database_reads_back(sample: Path, tmp_path: Path) -> None:
    need_tools("rpm")
    root = _build(sample, tmp_path, "a")
    left = {p.name for p in (root / "var/lib/rpm").iterdir()}
    assert "rpmdb.sqlite" in left and not {"rpmdb.sqlite-wal", "rpmdb.sqlite-shm"} & left
    fmt = "%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH} %{INSTALLTIME} %{INSTALLTID} %{INSTALLCOLOR}\\n"
    assert _rpm(root, "-qa", "--qf", fmt).stdout == f"sample-1.0-1.x86_64 {EPOCH} {EPOCH} 3\n"
    verify = _rpm(root, "-V", "-a")
    assert verify.returncode == 0, verify.stdout
    states = _rpm(root, "-q", "--qf", "[%{FILESTATES:fstate} %{FILENAMES}\\n]", "sample").stdout
    assert "not installed /usr/share/doc/sample/README" in states
    assert "not installed /usr/share/locale/fr/sample.mo" in states
    assert "normal /usr/share/locale/de/sample.mo" in states


def test_verify_sees_a_change(sample: Path, tmp_path: Path) -> None:
    need_tools("rpm")
    root = _build(sample, tmp_path, "a")
    (root / "usr/bin/sample").write_text("changed\n")
    assert "/usr/bin/sample" in _rpm(root, "-V", "-a").stdout


def test_two_builds_same_bytes(sample: Path, tmp_path: Path) -> None:
    need_tools("rpm")
    a, b = _build(sample, tmp_path, "a"), _build(sample, tmp_path, "b")
    assert (a / "var/lib/rpm/rpmdb.sqlite").read_bytes() == (b / "var/lib/rpm/rpmdb.sqlite").read_bytes()


def test_database_lists_files(sample: Path, tmp_path: Path) -> None:
    need_tools("rpm")
    data = (_build(sample, tmp_path, "a") / "var/lib/rpm/rpmdb.sqlite").read_bytes()
    db = rpmdb.RpmDatabase()
    assert db.owns("var/lib/rpm/rpmdb.sqlite") and not db.owns("var/lib/rpm/other")
    listed = db.files("var/lib/rpm/rpmdb.sqlite", data)
    assert set(listed) == {"sample"} and "/usr/bin/sample" in listed["sample"]


@pytest.mark.parametrize("bad", [b"", b"not a database at all" * 100])
def test_unreadable_database(bad: bytes) -> None:
    with pytest.raises(Exception, match="cannot be read"):
        rpmdb.RpmDatabase().files("var/lib/rpm/rpmdb.sqlite", bad)


def test_install_times_set_whatever_the_host_rpm(sample: Path, tmp_path: Path) -> None:
    """The stored header's INSTALLTIME and INSTALLTID are patched in place (same length), for a host rpm older
    than 4.18 that takes them from the clock."""
    need_tools("rpm")
    db = _build(sample, tmp_path, "a") / "var/lib/rpm/rpmdb.sqlite"
    with closing(sqlite3.connect(db)) as conn:
        (blob,) = conn.execute("SELECT blob FROM Packages").fetchone()
    patched = rpmdb._settled(blob, set(), 1234567890, 5)
    assert len(patched) == len(blob) and patched != blob
    header = rpmdb._header_blob(patched)
    assert header.int32(rpmdb.INSTALLTIME) == [1234567895] and header.int32(rpmdb.INSTALLTID) == [1234567890]
    assert rpmdb._settled(patched, set(), EPOCH, 0) == blob


def test_database_under_usr_is_where_the_trees_macros_say(sample: Path, tmp_path: Path) -> None:
    """Fedora (since 36) and EL 10 keep the database in /usr/lib/sysimage/rpm: a tree written there is read by
    rpm at the `%_dbpath` the tree's own macros give (as Fedora's rpm package writes it), and through the
    /var/lib/rpm symlink that package's %posttrans makes; nothing is written under /var/lib/rpm."""
    need_tools("rpm")
    root = accounts_root(tmp_path / "a")
    (done,) = unpack_all(root, [("sample", sample)], OPTIONS, EPOCH)
    rpmdb.write(Tree(root), SYSIMAGE, [(sample, skipped(list(done.files), OPTIONS))], EPOCH, "x86_64")
    assert not (root / "var/lib/rpm").exists()
    macros = root / "usr/lib/rpm/macros.d/macros.dbpath"
    macros.parent.mkdir(parents=True)
    macros.write_text("%_dbpath %{_usr}/lib/sysimage/rpm\n")
    host = subprocess.run(["rpm", "--eval", "%{_rpmconfigdir}/macros"], capture_output=True, text=True).stdout
    said = subprocess.run(
        ["rpm", "--macros", f"{host.strip()}:{macros}", "--eval", "%{_dbpath}"], capture_output=True, text=True
    ).stdout.strip()
    assert said == SYSIMAGE
    query = ["-qa", "--qf", "%{NAME}\\n"]
    listed = subprocess.run(["rpm", "--root", str(root), "--dbpath", said, *query], capture_output=True, text=True)
    assert listed.stdout == "sample\n", listed.stderr
    (root / "var/lib").mkdir(parents=True)
    (root / "var/lib/rpm").symlink_to("../../usr/lib/sysimage/rpm")
    assert _rpm(root, *query).stdout == "sample\n"


def test_each_release_has_its_database_path() -> None:
    """The data: EL 9 keeps /var/lib/rpm, EL 10 and every Fedora release /usr/lib/sysimage/rpm."""
    for name in (Distro.ALMALINUX, Distro.ROCKYLINUX, Distro.CENTOS_STREAM):
        assert {v: r.dbpath for v, r in DISTROS[name].releases.items()} == {"9": "/var/lib/rpm", "10": SYSIMAGE}
    assert {r.dbpath for r in DISTROS[Distro.FEDORA].releases.values()} == {SYSIMAGE}


@pytest.mark.parametrize("mode", [0o755, 0o750])
def test_the_database_made_aside_has_what_rpm_gives_it_in_place(sample: Path, tmp_path: Path, mode: int) -> None:
    """The database is made in a private directory while the tree is unpacked, then put in the tree: its file
    has the mode the host's rpm gives one made in the tree's directory itself, and the epoch as its time."""
    need_tools("rpm")
    root = accounts_root(tmp_path / "tree")
    (root / "var/lib/rpm").mkdir(parents=True)
    os.chmod(root / "var/lib/rpm", mode)
    (done,) = unpack_all(root, [("sample", sample)], OPTIONS, EPOCH)
    rpmdb.write(Tree(root), "/var/lib/rpm", [(sample, skipped(list(done.files), OPTIONS))], EPOCH, "x86_64")
    in_place = tmp_path / "in-place"
    in_place.mkdir()
    os.chmod(in_place, mode)
    for action in ("--initdb", "--rebuilddb"):  # rebuilt, as the build's is: rpm gives it its directory's mode
        subprocess.run(["rpm", "--dbpath", str(in_place), "--define", "_db_backend sqlite", action], check=True)
    made = (root / "var/lib/rpm/rpmdb.sqlite").stat()
    assert stat.S_IMODE(made.st_mode) == stat.S_IMODE((in_place / "rpmdb.sqlite").stat().st_mode) == mode & 0o666
    assert made.st_mtime == EPOCH and made.st_uid == os.geteuid()
    assert sorted(p.name for p in (root / "var/lib/rpm").iterdir()) == ["rpmdb.sqlite"]


IN_ACCESS, IN_OPEN = 0x1, 0x20


def _watch(path: Path) -> int:
    """An inotify descriptor (non-blocking) that reports each open and read of `path`."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = int(libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC))
    if fd < 0 or libc.inotify_add_watch(fd, os.fsencode(path), IN_ACCESS | IN_OPEN) < 0:
        raise OSError(ctypes.get_errno(), f"inotify on {path}")
    return fd


def _events(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


def test_the_host_rpm_opens_no_host_file_a_package_names(gpg_key: GpgKey, tmp_path: Path) -> None:
    """A package's `%config` file is one rpm looks at where the package would put it, to compare its digest:
    the host's rpm writing the image's database must look in a root of its own, never open the host's file at
    that path (a package could name any: /etc/shadow, or a host file the build cannot read in bounded time)."""
    need_tools("rpm", "rpmbuild", "rpmsign")
    host = tmp_path / "host" / "probe.conf"
    host.parent.mkdir()
    host.write_text("host's!!\n")  # as long as the packaged file: rpm hashes a file of the size it expects
    spec = Spec(
        "probe",
        arch="x86_64",
        install=f"mkdir -p $RPM_BUILD_ROOT{host.parent} && echo packaged > $RPM_BUILD_ROOT{host}",
        file_lines=[f"%config(noreplace) {host}"],
    )
    (package,) = RpmRepo(tmp_path / "repo", gpg_key).build([spec], sign=False)
    root = accounts_root(tmp_path / "tree")
    fd = _watch(host)
    try:
        rpmdb.write(Tree(root), "/var/lib/rpm", [(package, set())], EPOCH, "x86_64")
        assert _events(fd) == b"", f"the host's rpm opened {host}"
        assert _rpm(root, "-q", "--qf", "[%{FILENAMES}\\n]", "probe").stdout == f"{host}\n"
        host.read_bytes()  # the watch sees an open
        assert _events(fd) != b""
    finally:
        os.close(fd)
