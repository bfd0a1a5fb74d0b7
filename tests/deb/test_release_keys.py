"""Which signatures vouch for an InRelease: judged from gpgv's status lines as apt judges them, with hostile
keys made for real (revoked, expired, expired signatures, weak digests, several signers) and keyrings in
every form a user gives (binary, ASCII-armored, relative paths, garbage)."""

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bootstrap.deb import release
from bootstrap.errors import SignatureError
from bootstrap.host.openpgp import dearmor
from tests.fixtures.gpg import GpgKey
from tests.fixtures.repo import Repo

PAST = "20200101T000000"
"""When the hostile keys were made (gpg's --faked-system-time)."""
SIGNED_IN_PAST = "20200601T000000"


@pytest.fixture
def keys() -> Iterator[Callable[..., GpgKey]]:
    """`keys(**generate_args)`: fresh keys for one test (revoking one must not touch the session's keys)."""
    made: list[GpgKey] = []

    def make(**kwargs: str) -> GpgKey:
        made.append(GpgKey.generate(**kwargs))
        return made[-1]

    yield make
    for key in made:
        key.close()


@pytest.fixture
def repo(tmp_path: Path, gpg_key: GpgKey) -> Repo:
    r = Repo(tmp_path / "repo", gpg_key)
    r.debian_dists()
    r.add_package("fixture", "hello", "1.0")
    r.publish()
    return r


@pytest.fixture
def url(repo: Repo, serve: Callable[[Path], str]) -> str:
    return serve(repo.root)


def resign(repo: Repo, signed: Callable[[bytes], bytes]) -> None:
    base = repo.dist_dir("fixture")
    (base / "InRelease").write_bytes(signed((base / "Release").read_bytes()))


def keyring(tmp_path: Path, *keys: GpgKey) -> Path:
    """One binary keyring file holding every key given."""
    parts = [k.export(tmp_path / "keys" / f"{k.fingerprint}.gpg").read_bytes() for k in keys]
    dest = tmp_path / "keys" / "keyring.gpg"
    dest.write_bytes(b"".join(parts))
    return dest


def fetch(url: str, *rings: Path) -> release.Release:
    return release.fetch(url, "fixture", rings)


# --- keys that are no longer valid --------------------------------------------------------------------------


def test_a_revoked_key_vouches_for_nothing(repo: Repo, url: str, keys: Callable[..., GpgKey], tmp_path: Path) -> None:
    key = keys()
    repo.sign("fixture", key)
    assert fetch(url, keyring(tmp_path, key)).codename == "fixture"
    key.revoke()
    # gpgv exits 0 and prints VALIDSIG for it; only REVKEYSIG, in place of GOODSIG, tells.
    with pytest.raises(SignatureError, match=f"signed only by revoked key {key.fingerprint[-16:]}") as err:
        fetch(url, keyring(tmp_path, key))
    assert err.value.hint


def test_an_expired_key_vouches_for_nothing(repo: Repo, url: str, keys: Callable[..., GpgKey], tmp_path: Path) -> None:
    key = keys(created=PAST, expire="1y")
    resign(repo, lambda text: key.clearsign(text, at=SIGNED_IN_PAST))
    with pytest.raises(SignatureError, match=f"signed only by expired key {key.fingerprint[-16:]}"):
        fetch(url, keyring(tmp_path, key))


def test_an_expired_signature_vouches_for_nothing(
    repo: Repo, url: str, keys: Callable[..., GpgKey], tmp_path: Path
) -> None:
    key = keys(created=PAST)
    resign(repo, lambda text: key.clearsign(text, at=SIGNED_IN_PAST, expire="1d"))
    with pytest.raises(SignatureError, match="signature expired"):
        fetch(url, keyring(tmp_path, key))
    # the same key signing now is fine: it is the signature that expired, not the key
    resign(repo, key.clearsign)
    assert fetch(url, keyring(tmp_path, key)).codename == "fixture"


def test_a_weak_digest_vouches_for_nothing(repo: Repo, url: str, gpg_key: GpgKey) -> None:
    resign(repo, lambda text: gpg_key.clearsign(text, digest="SHA1"))
    with pytest.raises(SignatureError, match=r"weak digest \(SHA1"):
        fetch(url, repo.keyring)


# --- several signatures ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("known_first", [True, False])
def test_a_good_signature_beside_one_by_an_unknown_key_is_enough(
    repo: Repo, url: str, gpg_key: GpgKey, other_gpg_key: GpgKey, known_first: bool
) -> None:
    # Across a key transition the archive signs with old and new keys; a keyring may hold only one.
    signers = [gpg_key, other_gpg_key] if known_first else [other_gpg_key, gpg_key]
    repo.sign("fixture", signers)
    text = (repo.dist_dir("fixture") / "InRelease").read_text()
    assert text.count("-----BEGIN PGP SIGNATURE-----") == 1  # one armored block holding both signatures
    rel = fetch(url, repo.keyring)
    assert rel.codename == "fixture" and "main/binary-amd64/Packages" in rel.files


def test_a_good_signature_beside_one_by_a_revoked_key_is_enough(
    repo: Repo, url: str, gpg_key: GpgKey, keys: Callable[..., GpgKey], tmp_path: Path
) -> None:
    old = keys()
    repo.sign("fixture", [old, gpg_key])
    old.revoke()
    assert fetch(url, keyring(tmp_path, old, gpg_key)).codename == "fixture"


def test_a_revoked_key_beside_an_unknown_one_is_not_enough(
    repo: Repo, url: str, other_gpg_key: GpgKey, keys: Callable[..., GpgKey], tmp_path: Path
) -> None:
    revoked = keys()
    repo.sign("fixture", [revoked, other_gpg_key])
    revoked.revoke()
    with pytest.raises(SignatureError, match="revoked key"):
        fetch(url, keyring(tmp_path, revoked))


def test_only_unknown_keys_is_refused(repo: Repo, url: str, other_gpg_key: GpgKey, keys: Callable[..., GpgKey]) -> None:
    repo.sign("fixture", [other_gpg_key, keys()])
    with pytest.raises(SignatureError, match="signed by a key not in the keyring"):
        fetch(url, repo.keyring)


def test_a_second_signed_message_appended_is_refused(repo: Repo, url: str, other_gpg_key: GpgKey) -> None:
    # gpgv checks the first message and stops at the second with an ERROR status line: refuse the file.
    path = repo.dist_dir("fixture") / "InRelease"
    path.write_bytes(path.read_bytes() + other_gpg_key.clearsign(b"Origin: Evil\nSuite: stable\n"))
    with pytest.raises(SignatureError, match="malformed signed file"):
        fetch(url, repo.keyring)


# --- keyrings as users give them -----------------------------------------------------------------------------


def test_an_armored_keyring_works(url: str, gpg_key: GpgKey, other_gpg_key: GpgKey, tmp_path: Path) -> None:
    single = gpg_key.export(tmp_path / "archive.asc", armor=True)
    assert single.read_bytes().startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert fetch(url, single).codename == "fixture"
    # several armored blocks in one file, with comment headers, the right key last
    other = other_gpg_key.export(tmp_path / "other.asc", armor=True).read_bytes()
    both = tmp_path / "both.asc"
    both.write_bytes(other.replace(b"\n\n", b"\nComment: an armor header\n\n", 1) + b"\n" + single.read_bytes())
    assert fetch(url, both).codename == "fixture"


def test_dearmor_gives_the_binary_keyring(gpg_key: GpgKey, tmp_path: Path) -> None:
    binary = gpg_key.export(tmp_path / "k.gpg").read_bytes()
    armored = gpg_key.export(tmp_path / "k.asc", armor=True).read_bytes()
    assert hashlib.sha256(dearmor(armored, "k.asc")).digest() == hashlib.sha256(binary).digest()
    with pytest.raises(SignatureError, match="malformed ASCII armor"):
        dearmor(armored.replace(b"\n\n", b"\n\n!!", 1), "k.asc")
    with pytest.raises(SignatureError, match="no public key block"):
        dearmor(b"-----BEGIN PGP MESSAGE-----\n\nAAAA\n-----END PGP MESSAGE-----\n", "k.asc")


def test_a_relative_keyring_path_works(repo: Repo, url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo.root)
    assert fetch(url, Path(repo.keyring.name)).codename == "fixture"


def test_a_garbage_keyring_is_named_as_such(url: str, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.gpg"
    garbage.write_bytes(bytes(range(40, 240)))
    with pytest.raises(SignatureError, match="a keyring could not be read"):
        fetch(url, garbage)
