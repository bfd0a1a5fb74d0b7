"""`bootstrap keygen`: a key pair written whole, the private key 0600 and encrypted when a password is given,
never over an existing file."""

import os
import stat
from pathlib import Path

from bootstrap.sign import keys
from tests.cli.test_cli import cli

NO_PASSWORD = {name: "" for name in keys.PASSWORD_ENV}


def _env(**given: str) -> dict[str, str]:
    """The environment without the password variables of the test's own environment, plus `given`."""
    return {k: v for k, v in os.environ.items() if k not in keys.PASSWORD_ENV} | given


def test_keygen_writes_a_pair_that_signs_and_checks(tmp_path: Path) -> None:
    prefix = tmp_path / "release"
    proc = cli("keygen", "--output", str(prefix), env=_env(BOOTSTRAP_SIGN_PASSWORD="s3cret"))
    assert proc.returncode == 0, proc.stderr
    private, public = tmp_path / "release.key", tmp_path / "release.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in private.read_bytes()
    key = keys.load_private(private, lambda: b"s3cret")
    assert keys.load_public(public).verifies(b"m", key.sign(b"m"))
    assert keys.load_public(public).key_id()[:16] in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["release.key", "release.pub"], "no temporary file left"


def test_keygen_takes_cosigns_variable_and_an_empty_password_means_plain(tmp_path: Path) -> None:
    assert cli("keygen", "-o", str(tmp_path / "c"), env=_env(COSIGN_PASSWORD="pw")).returncode == 0
    assert keys.load_private(tmp_path / "c.key", lambda: b"pw")
    assert cli("keygen", "-o", str(tmp_path / "plain"), env=_env(BOOTSTRAP_SIGN_PASSWORD="")).returncode == 0
    assert b"ENCRYPTED" not in (tmp_path / "plain.key").read_bytes()


def test_keygen_never_overwrites(tmp_path: Path) -> None:
    (tmp_path / "k.pub").write_text("mine\n")
    proc = cli("keygen", "-o", str(tmp_path / "k"), env=_env(BOOTSTRAP_SIGN_PASSWORD="x"))
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[0] == f"error: {tmp_path / 'k.pub'} already exists"
    assert (tmp_path / "k.pub").read_text() == "mine\n" and not (tmp_path / "k.key").exists(), "nothing half-written"
