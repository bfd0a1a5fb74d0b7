"""Cached InRelease files are revalidated with conditional requests, and --offline reads them alone."""

import functools
import hashlib
import http.server
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.deb import release
from bootstrap.errors import BootstrapError
from bootstrap.host.cache import Cache, read_state, write_state
from tests.fixtures.gpg import GpgKey
from tests.fixtures.repo import Repo
from tests.fixtures.server import in_thread


class Recording(http.server.SimpleHTTPRequestHandler):
    statuses: list[tuple[str, int]]

    def log_request(self, code: object = "-", size: object = "-") -> None:
        type(self).statuses.append((self.path, int(str(getattr(code, "value", code)))))

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def archive(tmp_path: Path, gpg_key: GpgKey) -> Iterator[tuple[Repo, str, list[tuple[str, int]]]]:
    repo = Repo(tmp_path / "repo", gpg_key)
    repo.debian_dists()
    repo.add_package("fixture", "hello", "1.0")
    repo.publish()

    class Handler(Recording):
        statuses: list[tuple[str, int]] = []

    handler = Handler
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(repo.root)))
    stop = in_thread(server)
    yield repo, f"http://127.0.0.1:{server.server_address[1]}", handler.statuses
    stop()


def test_second_fetch_is_a_304_and_gives_the_same_release(
    archive: tuple[Repo, str, list[tuple[str, int]]], cache: Cache
) -> None:
    repo, url, statuses = archive
    first = release.fetch(url, "fixture", (repo.keyring,), cache=cache)
    second = release.fetch(url, "fixture", (repo.keyring,), cache=cache)
    assert [code for path, code in statuses if path.endswith("InRelease")] == [200, 304]
    assert second == first


def test_a_changed_release_is_fetched_again(archive: tuple[Repo, str, list[tuple[str, int]]], cache: Cache) -> None:
    repo, url, statuses = archive
    first = release.fetch(url, "fixture", (repo.keyring,), cache=cache)
    repo.add_package("fixture", "world", "2.0")
    repo.publish()
    inrelease = repo.dist_dir("fixture") / "InRelease"
    later = inrelease.stat().st_mtime + 5
    os.utime(inrelease, (later, later))
    second = release.fetch(url, "fixture", (repo.keyring,), cache=cache)
    assert [code for path, code in statuses if path.endswith("InRelease")] == [200, 200]
    assert second.inrelease_sha256 != first.inrelease_sha256


def test_offline_reads_the_cache_and_only_the_cache(
    archive: tuple[Repo, str, list[tuple[str, int]]], cache: Cache, tmp_path: Path
) -> None:
    repo, url, statuses = archive
    online = release.fetch(url, "fixture", (repo.keyring,), cache=cache)
    count = len(statuses)
    offline = release.fetch(url, "fixture", (repo.keyring,), cache=cache, offline=True)
    assert offline == online and len(statuses) == count
    with pytest.raises(BootstrapError, match="--offline"):
        release.fetch(url, "fixture", (repo.keyring,), cache=Cache(tmp_path / "empty").ensure(), offline=True)


@pytest.mark.parametrize("state", ["rewritten", "removed"])
def test_an_older_release_put_in_the_cache_is_not_taken(
    archive: tuple[Repo, str, list[tuple[str, int]]], cache: Cache, tmp_path: Path, state: str
) -> None:
    """Whoever can write the cache (not the mirror) puts an older, validly signed InRelease in the slot, and
    either rewrites its state (the older Date, and the Last-Modified the mirror answers a HEAD with, so that it
    says 304) without the user's key, or removes it: neither the 304 nor --offline gives the older copy."""
    repo, url, statuses = archive
    older = (repo.dist_dir("fixture") / "InRelease").read_bytes()
    repo.add_package("fixture", "hello", "2.0")  # the archive moves on
    repo.publish()
    inrelease = repo.dist_dir("fixture") / "InRelease"
    later = inrelease.stat().st_mtime + 5
    os.utime(inrelease, (later, later))
    current = release.fetch(url, "fixture", (repo.keyring,), cache=cache)
    (slot,) = (cache.root / "releases").iterdir()
    (slot / "InRelease").write_bytes(older)
    kept = read_state(slot / "state")
    if state == "rewritten":
        forged = {**kept, "sha256": hashlib.sha256(older).hexdigest(), "date": kept["date"] - 86400}
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("XDG_STATE_HOME", str(tmp_path / "someone-else"))
            write_state(slot / "state", forged)
    else:
        (slot / "state").unlink()
    with pytest.raises(BootstrapError, match="--offline"):
        release.fetch(url, "fixture", (repo.keyring,), cache=cache, offline=True)
    again = release.fetch(url, "fixture", (repo.keyring,), cache=cache)
    assert again.inrelease_sha256 == current.inrelease_sha256
    assert [code for path, code in statuses if path.endswith("InRelease")][-1] == 200, "fetched whole, no 304"
