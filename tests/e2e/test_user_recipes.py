"""A team's own recipe, end to end: slim plus packages, a local file, a user, image settings and a hook,
built from the real mirror and run in a real Docker Engine; reproducible, recorded, and checked."""

import json
import subprocess
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import bootstrap, unique_tag
from tests.fixtures.gpg import GpgKey
from tests.fixtures.repo import Repo
from tests.fixtures.server import Server

pytestmark = pytest.mark.e2e

Docker = Callable[..., subprocess.CompletedProcess[str]]

APP = """\
extends = "debian-slim"
description = "Our application base"

[packages]
include = ["curl"]

[[groups]]
name = "app"
gid = 10001

[[users]]
name = "app"
uid = 10001
group = "app"

[[files]]
source = "app.conf"
dest = "/etc/app/app.conf"
mode = "0640"
owner = "app:app"

[image]
tag = "example/app:{codename}"
user = "app"
workdir = "/srv/app"
env = ["APP_ENV=production"]
exposed-ports = ["8080/tcp"]

[[customize]]
run = "mkdir -p /srv/app && chown app:app /srv/app && echo ready > /srv/app/hooked"
"""

CHECKS = r"""
set -u
echo "uid=$(id -u) gid=$(id -g) pwd=$(pwd) env=$APP_ENV"
stat -c '%a %U:%G' /etc/app/app.conf
cat /srv/app/hooked
curl --version | head -n 1
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("project")
    (d / "app.conf").write_text("setting=1\n")
    (d / "app.toml").write_text(APP)
    return d


@pytest.fixture(scope="module")
def built(project: Path, as_root: None) -> Path:
    out = project / "out"
    bootstrap(str(project / "app.toml"), "-o", str(out), "-q")
    return out


def test_the_image_runs_as_its_user_with_its_files_settings_and_hook(built: Path, docker: Docker) -> None:
    out = docker("load", "-i", str(built / "image.tar")).stdout
    tag = out.strip().rsplit(" ", 1)[-1]
    assert tag.startswith("example/app:"), out
    docker.created.append(tag)  # type: ignore[attr-defined]
    lines = docker("run", "--rm", tag, "bash", "-c", CHECKS).stdout.splitlines()
    assert lines[0] == "uid=10001 gid=10001 pwd=/srv/app env=production"
    assert lines[1] == "640 app:app"
    assert lines[2] == "ready"
    assert lines[3].startswith("curl ")
    root = docker(
        "run",
        "--rm",
        "--user",
        "root",
        "--network",
        "host",
        tag,
        "bash",
        "-c",
        "dpkg --audit && echo audit-clean && apt-get update -qq && apt-get install -y -qq hello >/dev/null && hello",
    ).stdout.splitlines()
    assert root[0] == "audit-clean" and root[-1] == "Hello, world!"
    config = json.loads(docker("image", "inspect", tag).stdout)[0]["Config"]
    assert config["ExposedPorts"] == {"8080/tcp": {}}
    assert "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" in config["Env"]


def test_same_recipe_same_bytes_and_a_changed_file_makes_a_rebuild_due(built: Path, project: Path) -> None:
    again = project / "again"
    bootstrap(str(project / "app.toml"), "-o", str(again), "-q")
    for name in ("image.tar", "rootfs.tar.gz", "lock.json", "sbom.spdx.json"):
        assert (again / name).read_bytes() == (built / name).read_bytes(), name
    lock = json.loads((built / "lock.json").read_text())
    kinds = sorted(i["kind"] for i in lock["inputs"])
    assert kinds == ["file", "hook", "recipe"]
    assert bootstrap("check", str(project / "app.toml"), "--against", str(built), check=False).returncode == 0
    refused = bootstrap("verify", str(built), check=False)
    assert refused.returncode == 1 and "--recipe" in refused.stderr, "its files and hook are taken only from the user"
    assert "verified" in bootstrap("verify", str(built), "--recipe", str(project / "app.toml")).stdout
    (project / "app.conf").write_text("setting=2\n")
    try:
        proc = bootstrap("check", str(project / "app.toml"), "--against", str(built), check=False)
        assert proc.returncode == 10, proc.stdout + proc.stderr
        assert "file /etc/app/app.conf changed" in proc.stdout
    finally:
        (project / "app.conf").write_text("setting=1\n")


def test_a_misspelled_key_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "debian-slim"\n[packages]\ninclude = ["curl"]\n[imag]\nuser = "x"\n')
    out = tmp_path / "out"
    proc = bootstrap(str(bad), "-o", str(out), check=False)
    assert proc.returncode != 0
    assert proc.stderr.splitlines() == [f"error: {bad}: unknown key 'imag'", "hint: did you mean 'image'?"]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


@pytest.fixture(scope="module")
def extra_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, GpgKey]]:
    with GpgKey.generate("Example Repository <repo@example.invalid>") as key:
        repo = Repo(tmp_path_factory.mktemp("extra") / "repo", key)
        repo.add_dist("stable", "stable", "stable")
        repo.add_package(
            "stable",
            "example-tool",
            "1.0",
            arch="all",
            files={"/usr/bin/example-tool": ("#!/bin/sh\necho tool\n", 0o755)},
        )
        repo.publish()
        server = Server(repo.root)
        try:
            yield server.url, key
        finally:
            server.stop()


def test_a_company_ca_and_an_extra_repository(
    extra_repo: tuple[str, GpgKey], tmp_path: Path, docker: Docker, as_root: None
) -> None:
    url, key = extra_repo
    key.export(tmp_path / "example-archive-keyring.asc", armor=True)
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=Example Company Root CA",
            "-keyout",
            str(tmp_path / "ca.key"),
            "-out",
            str(tmp_path / "company-ca.crt"),
        ],
        check=True,
        capture_output=True,
    )
    (tmp_path / "company.toml").write_text(
        f"""extends = "debian-slim"
[packages]
include = ["ca-certificates", "example-tool"]
[[repositories]]
url = "{url}"
suites = ["stable"]
keyring = "example-archive-keyring.asc"
[[files]]
source = "company-ca.crt"
dest = "/usr/local/share/ca-certificates/company-ca.crt"
[[customize]]
run = "update-ca-certificates"
"""
    )
    out = tmp_path / "out"
    bootstrap(str(tmp_path / "company.toml"), "-o", str(out), "-q")
    with tarfile.open(out / "rootfs.tar.gz") as tar:
        bundle = tar.extractfile("etc/ssl/certs/ca-certificates.crt").read().decode()  # type: ignore[union-attr]
        sources = tar.extractfile("etc/apt/sources.list.d/example-archive-keyring.sources").read().decode()  # type: ignore[union-attr]
        names = tar.getnames()
    assert (tmp_path / "company-ca.crt").read_text().strip().splitlines()[1] in bundle
    assert f"URIs: {url}" in sources and "Signed-By: /etc/apt/keyrings/example-archive-keyring.asc" in sources
    assert "usr/bin/example-tool" in names
    lock = json.loads((out / "lock.json").read_text())
    assert any(s["mirror"] == url for s in lock["sources"]), "the extra repository's release is locked"
    assert any(i["kind"] == "keyring" for i in lock["inputs"])
    tag = unique_tag("company")
    docker.created.append(tag)  # type: ignore[attr-defined]
    loaded = docker("load", "-i", str(out / "image.tar")).stdout.strip().rsplit(" ", 1)[-1]
    docker("tag", loaded, tag)
    docker.created.append(loaded)  # type: ignore[attr-defined]
    ran = docker("run", "--rm", "--network", "host", tag, "bash", "-c", "example-tool && apt-get update -qq && echo ok")
    assert ran.stdout.split() == ["tool", "ok"], ran.stdout + ran.stderr


def test_an_extra_repository_signed_by_another_key_is_refused(
    extra_repo: tuple[str, GpgKey], tmp_path: Path, other_gpg_key: GpgKey
) -> None:
    url, _ = extra_repo
    other_gpg_key.export(tmp_path / "wrong.asc", armor=True)
    (tmp_path / "r.toml").write_text(
        f'extends = "debian-slim"\n[[repositories]]\nurl = "{url}"\nsuites = ["stable"]\nkeyring = "wrong.asc"\n'
    )
    proc = bootstrap(str(tmp_path / "r.toml"), "-o", str(tmp_path / "out"), check=False)
    assert proc.returncode == 1 and "key not in the keyring" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()
