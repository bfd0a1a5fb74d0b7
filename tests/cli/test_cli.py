"""The command line: list, show, resolve (on a fixture archive), usage errors, version."""

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.gpg import GpgKey
from tests.fixtures.repo import Repo

ROOT = Path(__file__).resolve().parents[2]


def cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, python_args: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run `python -m bootstrap ARGS` (with `python_args`: `python ARGS`)."""
    import os

    return subprocess.run(
        [sys.executable, *([] if python_args else ["-m", "bootstrap"]), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        cwd=cwd,
    )


def test_list_and_show() -> None:
    listed = cli("list")
    assert listed.returncode == 0
    names = [line.split("\t")[0] for line in listed.stdout.splitlines()]
    shipped = {"debian", "debian-slim", "debian-static", "debian-static-nonroot", "debian-base", "debian-cc", "ubuntu"}
    assert shipped <= set(names)
    assert names == sorted(names)
    shown = json.loads(cli("show", "debian-slim").stdout)
    assert shown["packages"]["include"] == ["apt"] and "/usr/share/doc/*" in shown["filters"]["path-exclude"]
    assert shown["image"]["tag"] == "debian:{codename}-slim"


@pytest.fixture
def archive(tmp_path: Path, gpg_key: GpgKey, serve: Callable[[Path], str]) -> list[str]:
    """A signed fixture archive on 127.0.0.1: the source options that point a command at it."""
    repo = Repo(tmp_path / "repo", gpg_key)
    repo.debian_dists()
    repo.add_package("fixture", "base", "1.0", priority="required", depends="libbase (>= 2)")
    repo.add_package("fixture", "libbase", "2.0")
    repo.add_package("fixture", "apt", "3.0", depends="libbase")
    repo.add_package("fixture-security", "libbase", "2.1")
    repo.add_package("fixture", "unrelated", "1.0")
    repo.publish()
    url = serve(repo.root)
    return ["--mirror", url, "--security-mirror", url, "--keyring", str(repo.keyring)]


def test_resolve_prints_the_package_set(tmp_path: Path, archive: list[str]) -> None:
    proc = cli("resolve", "debian-slim", *archive, "--cache-dir", str(tmp_path / "cache"))
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


def _one_error(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """The error line of a failed command, after checking it failed as every failure must: `error:` and `hint:`
    lines only, no traceback, the expected exit code."""
    lines = proc.stderr.splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), proc.stderr
    return lines[0]


def test_lock_into_a_missing_directory_or_onto_a_directory(tmp_path: Path, archive: list[str]) -> None:
    cache = ["--cache-dir", str(tmp_path / "cache")]
    missing = tmp_path / "nonexistent" / "x.json"
    assert str(missing) in _one_error(cli("lock", "debian-slim", *archive, *cache, "-o", str(missing)))
    assert not missing.parent.exists()
    taken = tmp_path / "taken.json"
    taken.mkdir()
    line = _one_error(cli("lock", "debian-slim", *archive, *cache, "-o", str(taken)))
    assert line == f"error: {taken}: Is a directory"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "repo", "taken.json"]
    done = cli("lock", "debian-slim", *archive, *cache, "-o", str(tmp_path / "ok.json"))
    assert done.returncode == 0 and json.loads((tmp_path / "ok.json").read_text())["packages"]


def test_a_malformed_mirror_url_is_refused_before_any_download(tmp_path: Path) -> None:
    line = _one_error(cli("resolve", "debian-slim", "--mirror", "http://[::1", "--cache-dir", str(tmp_path / "c")))
    assert line == "error: mirror URL 'http://[::1' (from --mirror) is not valid: Invalid IPv6 URL"
    assert not (tmp_path / "c").exists()


def test_a_tag_docker_would_not_take_is_refused_before_any_work(tmp_path: Path) -> None:
    out, cache = tmp_path / "out", tmp_path / "c"
    line = _one_error(cli("build", "debian-slim", "--tag", "Debian:Trixie", "-o", str(out), "--cache-dir", str(cache)))
    assert line.startswith("error: 'Debian:Trixie' is not an image name (") and "must be lowercase" in line
    assert not out.exists() and not cache.exists()


def test_an_os_error_that_escapes_names_the_path(tmp_path: Path) -> None:
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "lock.json").symlink_to("lock.json")  # a loop
    line = _one_error(cli("check", "debian-slim", "--against", str(tmp_path / "build")))
    assert line == f"error: {tmp_path / 'build' / 'lock.json'}: Too many levels of symbolic links"


EXPLODE = """
import sys
from bootstrap.cli import main as cli

@cli.cli.command()
@cli.cli_common.verbosity
def explode() -> None:
    raise ZeroDivisionError("an unforeseen bug\\nover two lines")

sys.argv = ["bootstrap", *sys.argv[1:]]
cli.main()
"""


def test_an_unexpected_exception_is_an_internal_error() -> None:
    """No input reaches a bug on purpose (each one found is fixed): a command added for the test raises one."""
    proc = cli("-c", EXPLODE, "explode", python_args=True)
    line = _one_error(proc, 70)
    assert line == "error: internal error: ZeroDivisionError: an unforeseen bug over two lines"
    assert proc.stderr.splitlines()[1] == "hint: run again with --debug for a traceback and report it"
    debug = cli("-c", EXPLODE, "explode", "--debug", python_args=True)
    assert debug.returncode == 70 and "Traceback (most recent call last)" in debug.stderr
    assert "in explode\nZeroDivisionError: an unforeseen bug" in debug.stderr
    assert debug.stderr.rstrip().endswith("hint: run again with --debug for a traceback and report it")


def test_doctor_names_a_missing_rpm(tmp_path: Path) -> None:
    """The host's rpm writes an RPM image's package database: doctor says when it is not on PATH, and how to get
    it; with it there, that line is ok."""
    import shutil

    bare = tmp_path / "bin"
    bare.mkdir()
    missing = cli("doctor", env={"PATH": str(bare)})
    assert missing.returncode == 1, missing.stdout + missing.stderr
    assert "FAIL rpm on PATH (writes the package database of RPM-family images)" in missing.stdout
    assert "fix: as root: apt-get install rpm" in missing.stdout
    rpm = shutil.which("rpm")
    if rpm is None:
        pytest.skip("no rpm on this host (make deps installs it)")
    (bare / "rpm").symlink_to(rpm)
    found = cli("doctor", env={"PATH": str(bare)})
    assert "ok   rpm on PATH" in found.stdout, found.stdout


@pytest.mark.parametrize("epoch", ["253402300800", "9223372036854775808", "-5"])
def test_an_epoch_no_image_can_have_is_refused_before_any_work(epoch: str, tmp_path: Path) -> None:
    """Past the end of 9999 an image's dates cannot be written (RFC 3339), past 2^63 not even held: --epoch and
    SOURCE_DATE_EPOCH are refused at once, in one line, never after a whole build as an internal error."""
    said = cli("build", "debian-slim", "--epoch", epoch, "-o", str(tmp_path / "out"))
    assert said.returncode == 2 and "--epoch" in said.stderr and "Traceback" not in said.stderr
    env = {**os.environ, "SOURCE_DATE_EPOCH": epoch}
    said = cli(
        "build", "debian-slim", "--offline", "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "o"), env=env
    )
    (line,) = [x for x in said.stderr.splitlines() if x.startswith("error:")]
    assert said.returncode == 1 and "SOURCE_DATE_EPOCH" in line and not (tmp_path / "o").exists()
