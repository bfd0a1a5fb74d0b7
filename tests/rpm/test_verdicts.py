"""Signature verdicts kept in the cache (`bootstrap.rpm.verdicts`): a package checked once is not given to gpgv
again while its bytes and the keys are the same, and is given to it again when anything it was judged by
changes, the verdict is damaged, or it has stood its time. The family's check of the fixture repository's
packages proves it by running the second time with no gpgv on PATH."""

import os
import shutil
import time
from pathlib import Path

import pytest

from bootstrap.build import download, families, recipe
from bootstrap.build.plan import Options, Plan, make_plan
from bootstrap.errors import SignatureError
from bootstrap.host.cache import Cache, sha256_file
from bootstrap.rpm import verdicts
from bootstrap.rpm.family import RpmFamily
from bootstrap.rpm.verdicts import Verdicts
from tests.conftest import Serve
from tests.fixtures.gpg import GpgKey
from tests.rpm.test_family import built, write_recipe  # noqa: F401 (`built` is a fixture)


@pytest.fixture
def stored(sample: Path, tmp_path: Path) -> tuple[Cache, str, Path]:
    """A cache holding the sample package in its store: (the cache, the package's sha256, its blob)."""
    cache = Cache(tmp_path / "cache").ensure()
    sha256 = sha256_file(sample)
    blob = cache.blob(sha256)
    shutil.copyfile(sample, blob)
    return cache, sha256, blob


def _keyring(key: GpgKey, path: Path) -> tuple[Path, ...]:
    return (key.export(path, armor=True),)


def test_a_verdict_stands_for_the_same_bytes_and_keys(stored: tuple[Cache, str, Path], gpg_key: GpgKey) -> None:
    cache, sha256, blob = stored
    keys = _keyring(gpg_key, cache.root / "ring.asc")
    kept = Verdicts(cache, keys, {gpg_key.fingerprint})
    assert not kept.passed(sha256, blob)
    kept.record(sha256, blob)
    assert kept.passed(sha256, blob)
    assert Verdicts(cache, keys, {gpg_key.fingerprint.lower()}).passed(sha256, blob)
    # a file outside the store (not hashed against the metadata by the fetch) is never taken on a verdict
    outside = cache.root / "copy.rpm"
    shutil.copyfile(blob, outside)
    assert not kept.passed(sha256, outside)
    Verdicts(cache, keys, set()).record(sha256, outside)
    assert not Verdicts(cache, keys, set()).passed(sha256, blob)


def test_other_keys_or_signers_are_judged_again(
    stored: tuple[Cache, str, Path], gpg_key: GpgKey, other_gpg_key: GpgKey
) -> None:
    cache, sha256, blob = stored
    keys = _keyring(gpg_key, cache.root / "ring.asc")
    Verdicts(cache, keys, {gpg_key.fingerprint}).record(sha256, blob)
    both = (*keys, *_keyring(other_gpg_key, cache.root / "other.asc"))
    assert not Verdicts(cache, both, {gpg_key.fingerprint}).passed(sha256, blob)
    assert not Verdicts(cache, keys, {other_gpg_key.fingerprint}).passed(sha256, blob)
    assert not Verdicts(cache, keys, set()).passed(sha256, blob)
    # the same keyring file changed in place (a key revoked, say) is another set of keys
    keys[0].write_bytes(keys[0].read_bytes() + b"\n")
    assert not Verdicts(cache, keys, {gpg_key.fingerprint}).passed(sha256, blob)


def test_a_verdict_stands_for_its_lifetime_only(stored: tuple[Cache, str, Path], gpg_key: GpgKey) -> None:
    cache, sha256, blob = stored
    kept = Verdicts(cache, _keyring(gpg_key, cache.root / "ring.asc"), set())
    kept.record(sha256, blob)
    now = time.time()
    assert kept.passed(sha256, blob, now + verdicts.LIFETIME - 60)
    assert not kept.passed(sha256, blob, now + verdicts.LIFETIME + 1)
    assert not kept.passed(sha256, blob, now - 3600)  # recorded "in the future": a clock set back


def test_a_damaged_or_foreign_verdict_is_not_taken(stored: tuple[Cache, str, Path], gpg_key: GpgKey) -> None:
    cache, sha256, blob = stored
    kept = Verdicts(cache, _keyring(gpg_key, cache.root / "ring.asc"), set())
    kept.record(sha256, blob)
    (path,) = (cache.root / verdicts.AREA).iterdir()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    assert not kept.passed(sha256, blob)
    assert not path.exists()  # removed, to be made again
    kept.record(sha256, blob)
    os.chmod(path, 0o666)  # another user could have written it
    assert not kept.passed(sha256, blob)


def _plan(directory: Path, mirror: str, key: GpgKey, derived_cache: bool = True) -> Plan:
    path = write_recipe(directory, key, '[packages]\ngroups = ["core"]\n\n[rpm]\nrepos = ["baseos"]\n')
    options = Options(arch="amd64", mirror=mirror, cache_dir=directory / "c", derived_cache=derived_cache)
    return make_plan(recipe.load(str(path), given=True), options)


def test_the_family_runs_gpgv_once_per_package_and_keys(
    built: Path,  # noqa: F811
    serve_session: Serve,
    gpg_key: GpgKey,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    plan = _plan(tmp_path, serve_session(built), gpg_key)
    family = families.family_for(plan)
    assert isinstance(family, RpmFamily)
    selection = family.resolve(family.open("amd64"))
    files = download.fetch_all(selection.packages, plan.cache)
    assert set(family.verified(selection, files)) == set(selection.names())
    kept = sorted(p.name.split(".")[0] for p in (plan.cache.root / verdicts.AREA).iterdir())
    assert kept == sorted(p.sha256 for p in selection.packages)

    # without the derived files (as `verify` rebuilds), every package is checked again: gpgv is needed
    again = families.family_for(_plan(tmp_path / "again", plan.mirror, gpg_key, derived_cache=False))
    assert isinstance(again, RpmFamily)
    empty = tmp_path / "no-gpgv"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert set(family.verified(selection, files)) == set(selection.names())  # no gpgv needed: the verdicts
    with pytest.raises(SignatureError, match="gpgv is not installed"):
        again.verified(selection, files)
