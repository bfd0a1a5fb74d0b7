"""Signed Release files: signature, expiry, fields, and the checksums that index loading checks."""

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bootstrap.deb import index, release
from bootstrap.errors import BootstrapError, ChecksumError, MirrorError, SignatureError
from bootstrap.host.cache import Cache
from tests.fixtures.gpg import GpgKey
from tests.fixtures.leftovers import temp_files
from tests.fixtures.repo import Repo


@dataclass
class Served:
    repo: Repo
    url: str

    def fetch(self, dist: str = "fixture", **kwargs: Any) -> release.Release:
        return release.fetch(self.url, dist, (self.repo.keyring,), **kwargs)


@pytest.fixture
def make_repo(tmp_path: Path, gpg_key: GpgKey, serve: Callable[[Path], str]) -> Callable[..., Served]:
    """`make_repo(**dist_settings)`: a published one-package archive (dists fixture, -updates, -security)."""

    def make(**settings: Any) -> Served:
        repo = Repo(tmp_path / "repo", gpg_key)
        repo.debian_dists(**settings)
        repo.add_package("fixture", "hello", "1.0", compression="gzip")
        repo.publish()
        return Served(repo, serve(repo.root))

    return make


@pytest.fixture
def served(make_repo: Callable[..., Served]) -> Served:
    return make_repo()


# --- good archives -----------------------------------------------------------------------------------------


def test_good_signature_gives_the_release_fields(served: Served) -> None:
    rel = served.fetch()
    assert (rel.origin, rel.suite, rel.codename, rel.dist) == ("Debian", "stable", "fixture", "fixture")
    assert rel.date == int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp())
    assert rel.valid_until is None
    assert rel.by_hash is True
    assert rel.components == ("main",)
    assert rel.mirror == served.url
    base = served.repo.dist_dir("fixture")
    assert rel.inrelease_sha256 == hashlib.sha256((base / "InRelease").read_bytes()).hexdigest()
    assert sorted(rel.files) == [f"main/binary-amd64/Packages{s}" for s in ("", ".gz", ".xz")]
    for name, entry in rel.files.items():
        data = (base / name).read_bytes()
        assert (entry.sha256, entry.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert rel.url("main/binary-amd64/Packages") == f"{served.url}/dists/fixture/main/binary-amd64/Packages"


def test_suite_alias_is_fetched_under_its_own_name(served: Served) -> None:
    rel = served.fetch("stable")
    assert (rel.dist, rel.suite, rel.codename) == ("stable", "stable", "fixture")
    assert rel.url("x") == f"{served.url}/dists/stable/x"


def test_security_suite(served: Served) -> None:
    rel = served.fetch("fixture-security")
    assert (rel.suite, rel.codename) == ("stable-security", "fixture-security")


def test_text_outside_the_signature_is_ignored(served: Served) -> None:
    # gpgv accepts a clearsigned message with text around it; only what the signature covers may be read.
    path = served.repo.dist_dir("fixture") / "InRelease"
    signed = path.read_bytes()
    forged = b"Origin: Evil\nSuite: evil\nSHA256:\n " + b"0" * 64 + b" 1 main/evil\n\n"
    path.write_bytes(b"Junk: 1\n\n" + forged + signed + b"\n" + forged)
    rel = served.fetch()
    assert (rel.origin, rel.suite) == ("Debian", "stable")
    assert "main/evil" not in rel.files


# --- bad signatures ----------------------------------------------------------------------------------------


def test_tampered_inrelease_is_a_bad_signature(served: Served) -> None:
    served.repo.tamper_inrelease("fixture")
    with pytest.raises(SignatureError, match="bad signature") as err:
        served.fetch()
    assert err.value.hint


def test_signature_by_a_key_outside_the_keyring(served: Served, other_gpg_key: GpgKey) -> None:
    served.repo.sign("fixture", other_gpg_key)
    with pytest.raises(SignatureError, match="signed by a key not in the keyring"):
        served.fetch()


def test_keyring_without_the_signing_key(served: Served, other_gpg_key: GpgKey, tmp_path: Path) -> None:
    wrong = other_gpg_key.export(tmp_path / "other.gpg")
    with pytest.raises(SignatureError, match="not in the keyring"):
        release.fetch(served.url, "fixture", (wrong,))
    # the right key anywhere in the list is enough
    assert release.fetch(served.url, "fixture", (wrong, served.repo.keyring)).codename == "fixture"


def test_unsigned_inrelease_is_refused(served: Served) -> None:
    served.repo.write_unsigned("fixture")
    with pytest.raises(SignatureError, match="not signed"):
        served.fetch()


def test_insecure_accepts_unsigned_and_reads_it(served: Served) -> None:
    served.repo.write_unsigned("fixture")
    rel = served.fetch(insecure=True)
    assert (rel.origin, rel.suite, rel.codename) == ("Debian", "stable", "fixture")
    assert len(rel.files) == 3


def test_insecure_accepts_a_bad_signature(served: Served) -> None:
    served.repo.tamper_inrelease("fixture")
    assert served.fetch(insecure=True).origin == "Tampered"


# --- expiry and malformed releases ---------------------------------------------------------------------------


def test_expired_valid_until(make_repo: Callable[..., Served]) -> None:
    served = make_repo(valid_until=dt.datetime(2024, 1, 8, tzinfo=dt.UTC))
    with pytest.raises(SignatureError, match="expired on Mon, 08 Jan 2024"):
        served.fetch()
    rel = served.fetch(check_valid_until=False)
    assert rel.valid_until == int(dt.datetime(2024, 1, 8, tzinfo=dt.UTC).timestamp())
    assert served.fetch(insecure=True).codename == "fixture"


def test_future_valid_until(make_repo: Callable[..., Served]) -> None:
    until = dt.datetime(2099, 1, 1, tzinfo=dt.UTC)
    assert make_repo(valid_until=until).fetch().valid_until == int(until.timestamp())


def test_missing_suite(served: Served) -> None:
    with pytest.raises(MirrorError, match="suite 'nosuch' not found"):
        served.fetch("nosuch")


def test_unreadable_date(make_repo: Callable[..., Served]) -> None:
    with pytest.raises(SignatureError, match="unreadable date"):
        make_repo(date="yesterday-ish").fetch()


def test_missing_date(make_repo: Callable[..., Served]) -> None:
    with pytest.raises(SignatureError, match="no Date field"):
        make_repo(date="").fetch()


def test_release_without_checksums(make_repo: Callable[..., Served]) -> None:
    with pytest.raises(BootstrapError, match="lists no SHA256"):
        make_repo(components=()).fetch()


# --- index checksums ------------------------------------------------------------------------------------------


def test_index_checksum_mismatch(served: Served, cache: Cache) -> None:
    rel = served.fetch()
    served.repo.corrupt("fixture", "main/binary-amd64/Packages.gz")
    with pytest.raises(ChecksumError, match="checksum mismatch"):
        index.load(cache, rel, "main", "amd64")
    entry = rel.files["main/binary-amd64/Packages.gz"]
    assert not cache.has(entry.sha256)
    assert temp_files(cache.root) == []


def test_index_checksum_mismatch_without_by_hash(make_repo: Callable[..., Served], cache: Cache) -> None:
    served = make_repo(by_hash=False)
    rel = served.fetch()
    assert rel.by_hash is False
    served.repo.corrupt("fixture", "main/binary-amd64/Packages.gz")
    with pytest.raises(ChecksumError):
        index.load(cache, rel, "main", "amd64")


def test_index_checked_against_the_release_not_the_server(served: Served, cache: Cache) -> None:
    # A Release signed before the index changed: the new (valid-looking) index must be refused.
    rel = served.fetch()
    served.repo.add_package("fixture", "intruder", "1.0")
    served.repo.publish()
    with pytest.raises(ChecksumError):
        index.load(cache, rel, "main", "amd64")
    fresh = served.fetch()
    assert "intruder" in index.load(cache, fresh, "main", "amd64").starts
