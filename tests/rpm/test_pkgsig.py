"""Every package's OpenPGP header signature and payload digest, checked before anything of it is used; each
hostile package made for real (rpmbuild, rpmsign) and the verdicts compared with rpm's own `rpmkeys -K`."""

import shutil
import subprocess
from pathlib import Path

import pytest

from bootstrap.errors import SignatureError, UnpackError
from bootstrap.rpm import pkgsig
from bootstrap.rpm.header import read_layout
from tests.fixtures.gpg import GpgKey
from tests.fixtures.rpmrepo import RpmRepo, Spec
from tests.fixtures.shared import made_once
from tests.rpm.conftest import need_tools

SPEC = Spec("hello", "2.12", "1", arch="x86_64", files={"/usr/bin/hello": "#!fixture hello\n" * 200}, post="echo hi")


@pytest.fixture(scope="module")
def unsigned(tmp_path_factory: pytest.TempPathFactory, gpg_key: GpgKey) -> Path:
    need_tools("rpmbuild", "rpmsign", "rpmkeys")
    made = made_once(
        tmp_path_factory, f"{SPEC.nevra}-unsigned", lambda d: RpmRepo(d / "repo", gpg_key).build([SPEC], sign=False)
    )
    (rpm,) = (made / "repo" / "Packages").iterdir()
    return rpm


def _copy(rpm: Path, tmp_path: Path, key: GpgKey | None) -> Path:
    dest = tmp_path / rpm.name
    shutil.copyfile(rpm, dest)
    if key is not None:
        RpmRepo(tmp_path / "signing", key).sign([dest], key)
    return dest


def _rpmkeys_ok(rpm: Path, key: GpgKey, tmp_path: Path) -> bool:
    """rpm's own verdict, with only `key` in a private database."""
    db = tmp_path / "rpmdb"
    db.mkdir(exist_ok=True)
    ring = key.export(tmp_path / "key.asc", armor=True)
    subprocess.run(["rpmkeys", "--dbpath", str(db), "--import", str(ring)], check=True)
    proc = subprocess.run(["rpmkeys", "--dbpath", str(db), "-K", str(rpm)], capture_output=True, text=True)
    return proc.returncode == 0 and "signature" in proc.stdout.lower()


@pytest.fixture
def keyring(gpg_key: GpgKey, tmp_path: Path) -> tuple[Path, ...]:
    return (gpg_key.export(tmp_path / "RPM-GPG-KEY-fixture", armor=True),)


def test_signed_package_passes(unsigned: Path, tmp_path: Path, gpg_key: GpgKey, keyring: tuple[Path, ...]) -> None:
    rpm = _copy(unsigned, tmp_path, gpg_key)
    layout = pkgsig.verify(rpm, keyring, rpm.name, frozenset({gpg_key.fingerprint}))
    assert layout.main.strings(1000) == ["hello"]  # NAME
    assert _rpmkeys_ok(rpm, gpg_key, tmp_path)


def test_unsigned_package(unsigned: Path, keyring: tuple[Path, ...]) -> None:
    with pytest.raises(SignatureError, match="not signed"):
        pkgsig.verify(unsigned, keyring, unsigned.name)


def test_unknown_key(
    unsigned: Path, tmp_path: Path, other_gpg_key: GpgKey, gpg_key: GpgKey, keyring: tuple[Path, ...]
) -> None:
    rpm = _copy(unsigned, tmp_path, other_gpg_key)
    with pytest.raises(SignatureError, match="not in the keyring"):
        pkgsig.verify(rpm, keyring, rpm.name)
    assert not _rpmkeys_ok(rpm, gpg_key, tmp_path)


def test_pinned_fingerprint(
    unsigned: Path, tmp_path: Path, other_gpg_key: GpgKey, gpg_key: GpgKey, keyring: tuple[Path, ...]
) -> None:
    """Signed by a key of the keyring, but not the one pinned."""
    rpm = _copy(unsigned, tmp_path, gpg_key)
    with pytest.raises(SignatureError, match="not signed by the key the recipe names"):
        pkgsig.verify(rpm, keyring, rpm.name, frozenset({other_gpg_key.fingerprint}))


def test_payload_changed_after_signing(
    unsigned: Path, tmp_path: Path, gpg_key: GpgKey, keyring: tuple[Path, ...]
) -> None:
    rpm = _copy(unsigned, tmp_path, gpg_key)
    data = bytearray(rpm.read_bytes())
    data[-40] ^= 0x01
    rpm.write_bytes(bytes(data))
    with pytest.raises(SignatureError, match="payload does not match"):
        pkgsig.verify(rpm, keyring, rpm.name)
    assert not _rpmkeys_ok(rpm, gpg_key, tmp_path)


def test_payload_of_another_package(unsigned: Path, tmp_path: Path, gpg_key: GpgKey, keyring: tuple[Path, ...]) -> None:
    """The signed headers of one build with the payload of another (another content, same name)."""
    other = Spec(SPEC.name, SPEC.version, SPEC.release, arch="x86_64", files={"/usr/bin/hello": "#!evil\n"})
    (evil,) = RpmRepo(tmp_path / "evil", gpg_key).build([other], sign=False)
    good = _copy(unsigned, tmp_path, gpg_key)
    with open(good, "rb") as f:
        start = read_layout(f, "good").payload
    with open(evil, "rb") as f:
        evil_start = read_layout(f, "evil").payload
    good.write_bytes(good.read_bytes()[:start] + evil.read_bytes()[evil_start:])
    with pytest.raises(SignatureError, match="payload does not match"):
        pkgsig.verify(good, keyring, good.name)


def test_header_changed_after_signing(
    unsigned: Path, tmp_path: Path, gpg_key: GpgKey, keyring: tuple[Path, ...]
) -> None:
    rpm = _copy(unsigned, tmp_path, gpg_key)
    data = rpm.read_bytes()
    rpm.write_bytes(data.replace(b"echo hi", b"echo HI", 1))
    with pytest.raises(SignatureError, match="bad signature"):
        pkgsig.verify(rpm, keyring, rpm.name)
    assert not _rpmkeys_ok(rpm, gpg_key, tmp_path)


@pytest.mark.parametrize("cut", [10, 200, 2000])
def test_truncated_or_not_an_rpm(unsigned: Path, tmp_path: Path, keyring: tuple[Path, ...], cut: int) -> None:
    bad = tmp_path / "bad.rpm"
    bad.write_bytes(unsigned.read_bytes()[:cut])
    with pytest.raises(UnpackError):
        pkgsig.verify(bad, keyring, bad.name)
    bad.write_bytes(b"\0" * 200)
    with pytest.raises(UnpackError, match="not an rpm file"):
        pkgsig.verify(bad, keyring, bad.name)
