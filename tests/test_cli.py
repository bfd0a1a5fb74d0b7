"""The command line: list, show, resolve (on a fixture archive), usage errors, version."""

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.fixtures.gpg import GpgKey
from tests.fixtures.repo import Repo

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", "bootstrap", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=cwd,
    )


def test_list_and_show() -> None:
    listed = cli("list")
    assert listed.returncode == 0
    names = [line.split("\t")[0] for line in listed.stdout.splitlines()]
    assert names == ["debian", "debian-slim"]
    shown = json.loads(cli("show", "debian-slim").stdout)
    assert shown["packages"]["include"] == ["apt"] and "/usr/share/doc/*" in shown["filters"]["path-exclude"]
    assert shown["image"]["tag"] == "debian:{codename}-slim"


def test_resolve_prints_the_package_set(tmp_path: Path, gpg_key: GpgKey, serve: Callable[[Path], str]) -> None:
    repo = Repo(tmp_path / "repo", gpg_key)
    repo.debian_dists()
    repo.add_package("fixture", "base", "1.0", priority="required", depends="libbase (>= 2)")
    repo.add_package("fixture", "libbase", "2.0")
    repo.add_package("fixture", "apt", "3.0", depends="libbase")
    repo.add_package("fixture-security", "libbase", "2.1")
    repo.add_package("fixture", "unrelated", "1.0")
    repo.publish()
    url = serve(repo.root)
    proc = cli(
        "resolve",
        "debian-slim",
        "--mirror",
        url,
        "--security-mirror",
        url,
        "--keyring",
        str(repo.keyring),
        "--cache-dir",
        str(tmp_path / "cache"),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["apt\t3.0\tamd64", "base\t1.0\tamd64", "libbase\t2.1\tamd64"]


def test_relative_armored_keyring(tmp_path: Path, gpg_key: GpgKey, serve: Callable[[Path], str]) -> None:
    repo = Repo(tmp_path / "repo", gpg_key)
    repo.debian_dists()
    repo.add_package("fixture", "apt", "3.0", priority="required")
    repo.publish()
    url = serve(repo.root)
    gpg_key.export(tmp_path / "keys" / "archive.asc", armor=True)
    args = ["resolve", "debian-slim", "--mirror", url, "--security-mirror", url, "--cache-dir", str(tmp_path / "c")]
    proc = cli(*args, "--keyring", "keys/archive.asc", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["apt\t3.0\tamd64"]


def test_usage_errors_are_one_line_with_a_hint() -> None:
    proc = cli("build")
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: Missing argument 'RECIPE'.",
        "hint: see `python -m bootstrap build --help`",
    ]
    proc = cli("show", "nope")
    assert proc.returncode == 1 and proc.stderr.startswith("error: unknown recipe 'nope'\nhint: known recipes:")


def test_no_mirror_found_is_explained(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    proc = cli("resolve", "debian", env={"BOOTSTRAP_APT_DIR": str(tmp_path), "BOOTSTRAP_DEBIAN_MIRROR": ""})
    assert proc.returncode == 1
    assert "no debian mirror given" in proc.stderr and "--mirror <debian-mirror-url>" in proc.stderr


def test_version() -> None:
    assert cli("--version").stdout.strip() == "bootstrap, version 0.1.0"
