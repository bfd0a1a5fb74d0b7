"""`bootstrap keygen`: a key pair written whole, the private key 0600 and encrypted when a password is given,
never over an existing file."""

import os
import pty
import select
import signal
import stat
import sys
import time
from pathlib import Path

from bootstrap.sign import keys
from tests.cli.test_cli import cli
from tests.conftest import ROOT


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


def _on_a_terminal(args: list[str], answers: list[str]) -> tuple[int, str]:
    """Run `bootstrap ARGS` on a pseudo-terminal, typing each answer when a password is asked."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, its terminal the pty
        os.environ.pop("BOOTSTRAP_SIGN_PASSWORD", None)
        os.environ.pop("COSIGN_PASSWORD", None)
        os.environ["PYTHONPATH"] = str(ROOT)
        os.execv(sys.executable, [sys.executable, "-m", "bootstrap", *args])
    seen = b""
    pending = list(answers)
    answered = 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if pending and seen[answered:].rstrip().endswith(b":"):  # a new prompt: getpass flushed the input before it
            os.write(fd, pending.pop(0).encode() + b"\n")
            answered = len(seen)
    else:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def test_keygen_asks_twice_on_a_terminal(tmp_path: Path) -> None:
    code, shown = _on_a_terminal(["keygen", "-o", str(tmp_path / "t")], ["typed", "typed"])
    assert code == 0, shown
    assert shown.count("password") >= 2 and "typed" not in shown, "asked twice, never echoed"
    assert keys.load_private(tmp_path / "t.key", lambda: b"typed")
    code, shown = _on_a_terminal(["keygen", "-o", str(tmp_path / "u")], ["one", "two"])
    assert code == 1 and "error: the two passwords differ" in shown
    assert not (tmp_path / "u.key").exists() and not (tmp_path / "u.pub").exists()
