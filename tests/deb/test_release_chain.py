"""What a signature cannot say alone: that the release is the suite asked for, that it is not from the future,
and that it is not older than one already verified. Mirrors that lie are fixture archives on 127.0.0.1
serving real signed files under the wrong name or from the wrong time."""

import datetime as dt
import itertools
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.deb import release
from bootstrap.deb.archive import Archive, open_archive
from bootstrap.deb.distros import DISTROS, Distro
from bootstrap.errors import SignatureError
from bootstrap.host.cache import Cache
from tests.fixtures.gpg import GpgKey
from tests.fixtures.leftovers import temp_files
from tests.fixtures.repo import Repo, build_deb
from tests.fixtures.server import Server


@pytest.fixture
def repo(tmp_path: Path, gpg_key: GpgKey) -> Repo:
    """bookworm (oldstable) and trixie (stable), each with -updates and -security, and sid (unstable)."""
    r = Repo(tmp_path / "repo", gpg_key)
    r.debian_dists("bookworm", "oldstable")
    r.debian_dists("trixie", "stable")
    r.add_dist("sid", "unstable", "sid")
    deb = build_deb(tmp_path, "hello", "1.0")
    for dist in r.dists:
        r.add_deb(dist, deb)
    r.publish()
    return r


@pytest.fixture
def server(repo: Repo) -> Iterator[Server]:
    with Server(repo.root) as s:
        yield s


def open_suite(server: Server, repo: Repo, suite: str, cache: Cache) -> Archive:
    return open_archive(
        DISTROS[Distro.DEBIAN], server.url, server.url, suite, ("main",), "amd64", (repo.keyring,), cache
    )


_later = itertools.count(1)


def touch_later(path: Path) -> None:
    """A newer mtime than any before, so the server answers the next conditional GET with the new file."""
    when = time.time() + 60 * next(_later)
    os.utime(path, (when, when))


def republish(repo: Repo, dist: str, date: dt.datetime) -> None:
    """Sign `dist` again with another Date."""
    repo.dists[dist].date = date
    repo.publish(dist)
    touch_later(repo.dist_dir(dist) / "InRelease")


# --- the suite asked for ------------------------------------------------------------------------------------


def test_a_suite_served_under_another_name_is_refused(repo: Repo, server: Server) -> None:
    repo.substitute("forky", "sid")  # sid's genuine, signed InRelease under dists/forky
    with pytest.raises(SignatureError, match="signed as suite 'unstable' \\(codename 'sid'\\), not 'forky'") as err:
        release.fetch(server.url, "forky", (repo.keyring,))
    assert "dists/forky" in err.value.hint
    assert release.fetch(server.url, "sid", (repo.keyring,)).codename == "sid"


def test_an_old_release_passed_off_as_the_asked_one_stops_before_its_updates(
    repo: Repo, server: Server, cache: Cache
) -> None:
    repo.substitute("trixie", "bookworm")
    with pytest.raises(SignatureError, match="signed as suite 'oldstable' \\(codename 'bookworm'\\), not 'trixie'"):
        open_suite(server, repo, "trixie", cache)
    assert not [p for p in server.requests if "bookworm" in p]


def test_substituted_updates_are_refused(repo: Repo, server: Server, cache: Cache) -> None:
    repo.substitute("trixie-updates", "bookworm-updates")
    with pytest.raises(SignatureError, match="trixie-updates/InRelease is signed as suite 'oldstable-updates'"):
        open_suite(server, repo, "trixie", cache)


def test_substituted_security_is_refused_through_an_alias(repo: Repo, server: Server, cache: Cache) -> None:
    repo.substitute("trixie-security", "bookworm-security")
    with pytest.raises(SignatureError, match="not 'trixie-security'"):
        open_suite(server, repo, "stable", cache)


def test_an_alias_is_followed_to_its_signed_codename(repo: Repo, server: Server, cache: Cache) -> None:
    archive = open_suite(server, repo, "stable", cache)
    assert (archive.suite, archive.codename) == ("stable", "trixie")
    assert [r.dist for r in archive.releases] == ["trixie", "trixie-updates", "trixie-security"]
    assert not [p for p in server.requests if "bookworm" in p or "stable-" in p]


def test_an_alias_serving_another_suite_is_refused(repo: Repo, server: Server) -> None:
    (repo.root / "dists" / "stable").unlink()
    repo.substitute("stable", "bookworm")
    with pytest.raises(SignatureError, match="not 'stable'"):
        release.fetch(server.url, "stable", (repo.keyring,))


def test_a_release_naming_no_suite_is_refused(server: Server, repo: Repo) -> None:
    anon = repo.add_dist("anon")
    anon.suite = anon.codename = ""
    repo.publish("anon")
    assert "Suite:" not in (repo.dist_dir("anon") / "InRelease").read_text()
    with pytest.raises(SignatureError, match="signed as suite '\\?' \\(codename '\\?'\\), not 'anon'"):
        release.fetch(server.url, "anon", (repo.keyring,))


# --- dates ----------------------------------------------------------------------------------------------------


def test_a_release_from_the_future_is_refused(repo: Repo, server: Server) -> None:
    now = dt.datetime.now(dt.UTC)
    republish(repo, "sid", now + dt.timedelta(hours=2))
    with pytest.raises(SignatureError, match="2.0 h ahead of this machine's clock") as err:
        release.fetch(server.url, "sid", (repo.keyring,))
    assert "clock" in err.value.hint
    # a clock a little behind the archive's is tolerated
    republish(repo, "sid", now + dt.timedelta(seconds=release.MAX_FUTURE_SKEW // 2))
    assert release.fetch(server.url, "sid", (repo.keyring,)).codename == "sid"


def test_a_rollback_to_an_older_release_is_refused(repo: Repo, server: Server, cache: Cache) -> None:
    newer = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    republish(repo, "sid", newer)
    first = release.fetch(server.url, "sid", (repo.keyring,), cache=cache)
    republish(repo, "sid", dt.datetime(2024, 2, 1, tzinfo=dt.UTC))
    with pytest.raises(SignatureError, match="older than the Fri, 01 Mar 2024 00:00:00 GMT copy already verified"):
        release.fetch(server.url, "sid", (repo.keyring,), cache=cache)
    # the verified copy stays the cached one: offline builds and later checks still see it
    assert release.fetch(server.url, "sid", (repo.keyring,), cache=cache, offline=True) == first
    # the same Date again is no rollback, and a newer one moves the floor up
    republish(repo, "sid", newer)
    assert release.fetch(server.url, "sid", (repo.keyring,), cache=cache).date == first.date
    republish(repo, "sid", dt.datetime(2024, 4, 1, tzinfo=dt.UTC))
    assert release.fetch(server.url, "sid", (repo.keyring,), cache=cache).date > first.date
    republish(repo, "sid", newer)
    with pytest.raises(SignatureError, match="a rollback"):
        release.fetch(server.url, "sid", (repo.keyring,), cache=cache)


def test_a_copy_that_fails_the_checks_never_enters_the_cache(repo: Repo, server: Server, cache: Cache) -> None:
    good = release.fetch(server.url, "sid", (repo.keyring,), cache=cache)
    repo.tamper_inrelease("sid")
    touch_later(repo.dist_dir("sid") / "InRelease")
    with pytest.raises(SignatureError, match="bad signature"):
        release.fetch(server.url, "sid", (repo.keyring,), cache=cache)
    assert release.fetch(server.url, "sid", (repo.keyring,), cache=cache, offline=True) == good
    left = [p.name for p in temp_files(cache.root)]
    assert left == [], "no half-checked download is left behind"


def test_an_insecure_fetch_leaves_the_cache_alone(repo: Repo, server: Server, cache: Cache) -> None:
    good = release.fetch(server.url, "sid", (repo.keyring,), cache=cache)
    republish(repo, "sid", dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    repo.tamper_inrelease("sid")
    touch_later(repo.dist_dir("sid") / "InRelease")
    assert release.fetch(server.url, "sid", (), insecure=True, cache=cache).origin == "Tampered"
    # nothing unchecked was kept: the verified copy and its Date are still what the next build compares with
    assert release.fetch(server.url, "sid", (repo.keyring,), cache=cache, offline=True) == good
