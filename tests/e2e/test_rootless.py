"""Builds as an ordinary user, created by the test with subordinate id ranges: the same bytes as a root
build, outputs and cache owned by the user, and each missing prerequisite made for real and diagnosed."""

import hashlib
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from tests.e2e.conftest import Mirrored, bootstrap, need
from tests.e2e.users import User, as_user, make_user, remove_user, start_as_user
from tests.fixtures.debs import TarEntry, build_deb, build_raw_deb, raw_control
from tests.fixtures.leftovers import running
from tests.fixtures.repo import Repo
from tests.fixtures.server import Server

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def builder() -> Iterator[User]:
    need(shutil.which("newuidmap") is not None, "uidmap is not installed (make test-deps installs it)")
    user = make_user("bsrl", subids=True)
    yield user
    remove_user(user)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("recipe", ["debian-slim", "debian", "ubuntu"])
def test_an_ordinary_user_builds_the_same_bytes_as_root(
    recipe: str, builder: User, runtime: tuple[str, Path], tmp_path: Path
) -> None:
    out = builder.home / f"out-{recipe}"
    proc = as_user(builder, runtime, recipe, "-o", str(out), "-q")
    assert proc.returncode == 0, proc.stderr
    root_out = tmp_path / "root"
    bootstrap(recipe, "-o", str(root_out), "-q")
    for name in ("image.tar", "rootfs.tar.gz", "packages.txt", "sbom.spdx.json"):
        assert _sha256(out / name) == _sha256(root_out / name), f"{name} differs from the root build"
    owned = [p for p in [out, *out.iterdir(), builder.home / ".cache/bootstrap"] if p.stat().st_uid != builder.uid]
    assert not owned, f"not owned by the user: {owned}"
    proc = subprocess.run(
        [
            "setpriv",
            f"--reuid={builder.uid}",
            f"--regid={builder.gid}",
            "--init-groups",
            "rm",
            "-rf",
            str(out),
            str(builder.home / ".cache/bootstrap"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and not out.exists(), "the user removes everything without sudo: " + proc.stderr


def test_doctor_says_all_is_well(builder: User, runtime: tuple[str, Path]) -> None:
    proc = as_user(builder, runtime, "doctor")
    assert proc.returncode == 0, proc.stdout
    assert "builds without root work here" in proc.stdout
    assert f"subordinate uid range of {builder.name} in /etc/subuid" in proc.stdout


def test_a_user_without_subordinate_ids_is_told_the_fix(runtime: tuple[str, Path], as_root: None) -> None:
    user = make_user("bsno", subids=False)
    try:
        out = user.home / "out"
        proc = as_user(user, runtime, "debian-slim", "-o", str(out))
        assert proc.returncode == 1
        assert len(proc.stderr.splitlines()) == 2, proc.stderr
        error, hint = proc.stderr.splitlines()
        assert error.startswith("error: building an image without root needs a user namespace")
        assert "/etc/subuid" in error
        assert f"usermod --add-subuids 100000-165535 {user.name}" in hint and "bootstrap doctor" in hint
        assert not out.exists() and sorted(p.name for p in user.home.iterdir() if not p.name.startswith(".")) == []
        doctor = as_user(user, runtime, "doctor")
        assert doctor.returncode == 1 and "FAIL subordinate uid range" in doctor.stdout
    finally:
        remove_user(user)


def test_user_namespaces_disabled_by_the_sysctl(builder: User, runtime: tuple[str, Path]) -> None:
    out = builder.home / "out-disabled"
    proc = as_user(builder, runtime, "debian-slim", "-o", str(out), limit_userns=True)
    assert proc.returncode == 1, proc.stderr
    assert "user.max_user_namespaces = 0" in proc.stderr
    assert "sysctl -w user.max_user_namespaces=" in proc.stderr
    assert not out.exists()


@contextmanager
def _archive_with(mirrored: Mirrored, tmp_path: Path, deb: Path) -> Iterator[list[str]]:
    """The fixture archive plus one package, served on 127.0.0.1; yields the options that build from it (its
    keyring where any user can read it)."""
    repo = Repo(tmp_path / "repo", mirrored.repo.key)
    shutil.copytree(mirrored.repo.root, repo.root, dirs_exist_ok=True, symlinks=True)
    repo.dists = {
        k: replace(v, stanzas={c: list(s) for c, s in v.stanzas.items()}) for k, v in mirrored.repo.dists.items()
    }
    repo.add_deb("fixture", deb)
    repo.publish()
    shared = Path(tempfile.mkdtemp(prefix="bootstrap-archive-"))
    server = Server(repo.root)
    try:
        keyring = shared / "keyring.gpg"
        shutil.copy(repo.keyring, keyring)
        shared.chmod(0o755)
        keyring.chmod(0o644)
        yield ["--mirror", server.url, "--security-mirror", server.url, "--keyring", str(keyring)]
    finally:
        server.stop()
        shutil.rmtree(shared, ignore_errors=True)


def test_device_nodes_and_foreign_owners_come_out_as_root_writes_them(
    builder: User, runtime: tuple[str, Path], mirrored: Mirrored, tmp_path: Path
) -> None:
    """A package with a device node (which a user namespace cannot mknod) and files of other owners."""
    control = {**raw_control("zz-devices", what="device node"), "Priority": "required"}
    deb = build_raw_deb(
        tmp_path / "zz-devices_1.0_amd64.deb",
        control,
        [
            TarEntry("./usr/", "dir", mode=0o755),
            TarEntry("./usr/share/", "dir", mode=0o755),
            TarEntry("./usr/share/zz-devices/", "dir", mode=0o755),
            TarEntry("./usr/share/zz-devices/null", "chr", mode=0o666, device=(1, 3)),
            TarEntry("./usr/share/zz-devices/loop9", "blk", mode=0o660, gid=6, device=(7, 9)),
            TarEntry("./usr/share/zz-devices/owned", data=b"x\n", uid=1234, gid=5678, mode=0o640),
        ],
    )
    with _archive_with(mirrored, tmp_path, deb) as args:
        out = builder.home / "out-devices"
        proc = as_user(builder, runtime, "debian-slim", "-o", str(out), "-q", *args)
        assert proc.returncode == 0, proc.stderr
        root_out = tmp_path / "root"
        bootstrap("debian-slim", "-o", str(root_out), "-q", *args, "--cache-dir", str(tmp_path / "cache"))
    assert _sha256(out / "image.tar") == _sha256(root_out / "image.tar")
    with tarfile.open(out / "rootfs.tar.gz") as tar:
        null, loop, owned = (tar.getmember(f"usr/share/zz-devices/{n}") for n in ("null", "loop9", "owned"))
    assert null.ischr() and (null.devmajor, null.devminor, null.mode) == (1, 3, 0o666)
    assert loop.isblk() and (loop.devmajor, loop.devminor, loop.gid) == (7, 9, 6)
    assert (owned.uid, owned.gid, owned.mode) == (1234, 5678, 0o640)


def test_an_interrupt_sent_to_the_command_stops_the_build_inside(
    builder: User, runtime: tuple[str, Path], mirrored: Mirrored, tmp_path: Path
) -> None:
    """SIGINT to the process the user started (outside the namespace) reaches the build inside: it stops
    with its one-line message, nothing is written, no script keeps running."""
    marker = str(4200 + os.getpid() % 1000)
    deb = build_deb(
        tmp_path / "debs",
        "zz-slow",
        "1.0",
        priority="required",
        scripts={"postinst": f"#!/bin/sh\nexec sleep {marker}\n"},
    )
    with _archive_with(mirrored, tmp_path, deb) as args:
        out = builder.home / "out-interrupted"
        proc = start_as_user(builder, runtime, "debian-slim", "-o", str(out), *args)
        try:
            deadline = time.monotonic() + 120
            while not running(["sleep", marker]):
                assert proc.poll() is None and time.monotonic() < deadline, "the build never reached configure"
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines()[-1] == "error: interrupted; nothing was written"
    assert not out.exists()
    deadline = time.monotonic() + 10
    while running(["sleep", marker]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(["sleep", marker])
