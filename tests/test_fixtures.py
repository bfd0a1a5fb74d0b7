"""The fixture kit itself: what it builds must be what dpkg, gpgv and an HTTP client see."""

import hashlib
import stat
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.fixtures.repo import (
    GpgKey,
    Repo,
    ar_members,
    build_deb,
    build_hostile_deb,
    deb_tar,
    parse_fields,
    read_control,
)
from tests.fixtures.server import Server


def dpkg_deb(*args: str) -> str:
    return subprocess.run(["dpkg-deb", *args], check=True, capture_output=True, text=True).stdout


@pytest.mark.parametrize(("compression", "suffix"), [("xz", ".xz"), ("gzip", ".gz"), ("zstd", ".zst"), ("none", "")])
def test_build_deb_compressions(tmp_path: Path, compression: str, suffix: str) -> None:
    deb = build_deb(tmp_path, "comp", "1.0", files={"/usr/bin/comp": b"x"}, compression=compression)  # type: ignore[arg-type]
    names = [name for name, _ in ar_members(deb.read_bytes())]
    assert names == ["debian-binary", f"control.tar{suffix}", f"data.tar{suffix}"]
    assert "./usr/bin/comp" in dpkg_deb("--contents", str(deb))


def test_build_deb_contents_as_dpkg_sees_them(tmp_path: Path) -> None:
    deb = build_deb(
        tmp_path,
        "full",
        "1:2.0-1",
        depends="libc6 (>= 2.36)",
        pre_depends="dash",
        provides="thing (= 2)",
        conflicts="other",
        breaks="old (<< 1)",
        priority="important",
        essential=True,
        multi_arch="foreign",
        source="fullsrc (2.0-1)",
        files={"/usr/bin/full": (b"#!/bin/sh\n", 0o755), "/etc/full.conf": "key=value\n"},
        symlinks={"/usr/bin/full-link": "full"},
        dirs=["/var/lib/full"],
        scripts={"postinst": "#!/bin/sh\nexit 0\n"},
        conffiles=["/etc/full.conf"],
        triggers="interest /usr/share/full\n",
    )
    assert deb.name == "full_2.0-1_amd64.deb"
    fields = parse_fields(dpkg_deb("--field", str(deb)))
    assert fields["Package"] == "full"
    assert fields["Version"] == "1:2.0-1"
    assert fields["Source"] == "fullsrc (2.0-1)"
    assert (fields["Depends"], fields["Pre-Depends"], fields["Provides"]) == ("libc6 (>= 2.36)", "dash", "thing (= 2)")
    assert (fields["Conflicts"], fields["Breaks"]) == ("other", "old (<< 1)")
    assert (fields["Priority"], fields["Essential"], fields["Multi-Arch"]) == ("important", "yes", "foreign")
    assert read_control(deb) == dpkg_deb("--field", str(deb))

    with deb_tar(deb, "data") as data:
        members = {m.name: m for m in data.getmembers()}
    assert stat.S_IMODE(members["./usr/bin/full"].mode) == 0o755
    assert stat.S_IMODE(members["./etc/full.conf"].mode) == 0o644
    assert members["./usr/bin/full-link"].issym() and members["./usr/bin/full-link"].linkname == "full"
    assert members["./var/lib/full"].isdir()
    assert all(m.uid == 0 and m.gid == 0 and m.uname == "root" for m in members.values())

    with deb_tar(deb, "control") as control:
        files = {m.name.removeprefix("./"): m for m in control.getmembers()}

        def text(name: str) -> str:
            f = control.extractfile(files[name])
            assert f is not None
            return f.read().decode()

        assert text("conffiles") == "/etc/full.conf\n"
        assert text("triggers") == "interest /usr/share/full\n"
        assert stat.S_IMODE(files["postinst"].mode) == 0o755
        md5 = hashlib.md5(b"#!/bin/sh\n").hexdigest()
        assert f"{md5}  usr/bin/full\n" in text("md5sums")


def test_build_deb_is_reproducible(tmp_path: Path) -> None:
    one = build_deb(tmp_path / "one", "same", "1", files={"/a": b"a"}, symlinks={"/b": "a"})
    two = build_deb(tmp_path / "two", "same", "1", files={"/a": b"a"}, symlinks={"/b": "a"})
    assert one.read_bytes() == two.read_bytes()


def test_build_deb_refuses_escaping_paths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad path"):
        build_deb(tmp_path, "bad", "1", files={"/usr/../../etc/x": b""})


@pytest.mark.parametrize(
    ("kind", "name", "check"),
    [
        ("dotdot", "../escape", tarfile.TarInfo.isfile),
        ("nested-dotdot", "./usr/../../escape", tarfile.TarInfo.isfile),
        ("absolute", "/etc/evil", tarfile.TarInfo.isfile),
        ("symlink", "./link", tarfile.TarInfo.issym),
        ("hardlink", "./hardlink", tarfile.TarInfo.islnk),
    ],
)
def test_hostile_debs(tmp_path: Path, kind: str, name: str, check: object) -> None:
    deb = build_hostile_deb(tmp_path, kind)  # type: ignore[arg-type]
    # dpkg-deb reads the hand-made ar archive and control file
    assert parse_fields(dpkg_deb("--field", str(deb)))["Package"] == f"hostile-{kind}"
    with deb_tar(deb, "data") as data:
        members = {m.name: m for m in data.getmembers()}
    assert check(members[name])  # type: ignore[operator]
    if kind == "symlink":
        assert members["./link"].linkname == "/tmp/outside"
        assert members["./link/file"].isfile()
    if kind == "hardlink":
        assert members["./hardlink"].linkname == "/etc/passwd"


def test_hostile_symlink_target_is_settable(tmp_path: Path) -> None:
    deb = build_hostile_deb(tmp_path, "symlink", name="evil", target=str(tmp_path / "outside"))
    assert deb.name == "evil_1.0_amd64.deb"
    with deb_tar(deb, "data") as data:
        assert data.getmember("./link").linkname == str(tmp_path / "outside")


def test_repo_layout_and_signature(tmp_path: Path, gpg_key: GpgKey) -> None:
    repo = Repo(tmp_path / "repo", gpg_key)
    repo.debian_dists()
    deb = repo.add_package("fixture", "libzz1", "1.0-1", source="libzz", multi_arch="same")
    repo.add_package("fixture", "tool", "2", "all")
    repo.publish()
    assert deb == repo.root / "pool/main/libz/libzz/libzz1_1.0-1_amd64.deb"
    assert (repo.root / "dists/stable").resolve() == repo.dist_dir("fixture").resolve()
    packages = (repo.dist_dir("fixture") / "main/binary-amd64/Packages").read_text()
    stanzas = [parse_fields(s) for s in packages.split("\n\n")]
    assert [s["Package"] for s in stanzas] == ["libzz1", "tool"]
    for s in stanzas:
        data = (repo.root / s["Filename"]).read_bytes()
        assert s["SHA256"] == hashlib.sha256(data).hexdigest()
        assert s["Size"] == str(len(data))
    release = (repo.dist_dir("fixture") / "Release").read_text()
    assert "Suite: stable\nCodename: fixture\nDate: Mon, 01 Jan 2024 00:00:00 UTC\n" in release
    subprocess.run(
        ["gpgv", "--keyring", str(repo.keyring), str(repo.dist_dir("fixture") / "InRelease")],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "gpgv",
            "--keyring",
            str(repo.keyring),
            str(repo.dist_dir("fixture") / "Release.gpg"),
            str(repo.dist_dir("fixture") / "Release"),
        ],
        check=True,
        capture_output=True,
    )


def test_repo_refuses_two_different_files_at_one_pool_path(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    repo.add_dist("a")
    repo.add_dist("b")
    repo.add_package("a", "x", "1", files={"/x": b"one"})
    with pytest.raises(ValueError, match="already holds a different package"):
        repo.add_package("b", "x", "1", files={"/x": b"two"})
    repo.add_package("b", "x", "1", files={"/x": b"one"})


def test_server_serves_and_records(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file.gz").write_bytes(b"\x1f\x8bnot really")
    with Server(tmp_path) as server:
        assert server.url.startswith("http://127.0.0.1:")
        resp = requests.get(f"{server.url}/dir/file.gz", timeout=10)
        assert resp.content == b"\x1f\x8bnot really"
        assert requests.get(f"{server.url}/missing", timeout=10).status_code == 404
        assert server.requests == ["/dir/file.gz", "/missing"]
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/dir/file.gz", timeout=2)


def test_serve_fixture(tmp_path: Path, serve: Callable[[Path], str]) -> None:
    (tmp_path / "hello").write_text("hi")
    url = serve(tmp_path)
    assert requests.get(f"{url}/hello", timeout=10).text == "hi"
