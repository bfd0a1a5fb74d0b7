"""Names a signed archive gives that would be paths: a package name in the index and a trigger name in a .deb's
`triggers` file become files of the image's dpkg database (`info/<name>.list`, `triggers/<name>`). Built for
real (a hand-made .deb in a signed repository on 127.0.0.1, a build through the command line): refused in one
line, and nothing is written outside the tree, on the host."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.host.tree import TreeError, write_at
from tests.fixtures.debs import TarEntry, build_raw_deb, raw_control
from tests.fixtures.gpg import GpgKey
from tests.fixtures.repo import Repo
from tests.fixtures.server import Server

ROOT = Path(__file__).resolve().parents[2]
CLIMB = "../" * 40
"""Up from any directory of the tree to the host's root."""


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "/etc/x", "nul\0"])
def test_write_at_writes_only_an_entry_of_its_directory(tmp_path: Path, name: str) -> None:
    inner = tmp_path / "dir"
    inner.mkdir()
    fd = os.open(inner, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(TreeError, match="not a file name"):
            write_at(fd, name, "x")
    finally:
        os.close(fd)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["dir"]


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A directory of the host a hostile archive aims at, holding one file of the host's."""
    place = tmp_path / "host"
    place.mkdir()
    (place / "precious").write_text("host data\n")
    return place


@pytest.fixture
def archive(tmp_path: Path, gpg_key: GpgKey) -> Iterator[tuple[Repo, Server]]:
    repo = Repo(tmp_path / "repo", gpg_key)
    repo.debian_dists()
    with Server(repo.root) as server:
        yield repo, server


def _build(repo: Repo, server: Server, tmp_path: Path, include: str, priorities: str = "") -> str:
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        f'scripts = true\n[packages]\npriorities = [{priorities}]\nessential = false\ninclude = ["{include}"]\n'
    )
    argv = [sys.executable, "-m", "bootstrap", "build", str(recipe), "-o", str(tmp_path / "out"), "--suite",
            "fixture", "--mirror", server.url, "--security-mirror", server.url, "--keyring", str(repo.keyring),
            "--cache-dir", str(tmp_path / "cache"), "--epoch", "1750000000"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 1, proc.stderr
    assert not (tmp_path / "out").exists()
    (line,) = [x for x in proc.stderr.splitlines() if x.startswith("error:")]
    return line


def test_a_package_name_that_is_a_path_is_refused(archive: tuple[Repo, Server], tmp_path: Path, victim: Path) -> None:
    repo, server = archive
    deb = build_raw_deb(
        tmp_path / "evil_1.0_amd64.deb", raw_control("evil"), [TarEntry("./", "dir"), TarEntry("./usr/", "dir")]
    )
    name = "/" + CLIMB + str(victim / "owned").lstrip("/")
    repo.add_deb("fixture", deb, fields={"Package": name, "Priority": "required"})
    repo.add_package("fixture", "hello", "1.0", files={"/usr/share/hello/x": "hi\n"})
    repo.publish()
    said = _build(repo, server, tmp_path, "hello", '"required"')
    assert "is not one dpkg takes" in said
    assert sorted(p.name for p in victim.iterdir()) == ["precious"]


def test_a_trigger_name_that_is_a_path_is_refused(archive: tuple[Repo, Server], tmp_path: Path, victim: Path) -> None:
    repo, server = archive
    dirs = ("./var/", "./var/lib/", "./var/lib/dpkg/", "./var/lib/dpkg/triggers/", "./var/lib/dpkg/triggers/.../")
    entries = [TarEntry("./", "dir"), *(TarEntry(d, "dir") for d in dirs)]
    trigger = "interest " + CLIMB + str(victim / "precious").lstrip("/") + "\n"
    deb = build_raw_deb(tmp_path / "evil_1.0_amd64.deb", raw_control("evil"), entries, scripts={"triggers": trigger})
    repo.add_deb("fixture", deb)
    repo.publish()
    said = _build(repo, server, tmp_path, "evil")
    assert "evil: its triggers file names" in said and "no trigger name" in said
    assert (victim / "precious").read_text() == "host data\n"
