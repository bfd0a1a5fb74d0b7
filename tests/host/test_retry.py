"""The one retry policy, and the HTTP module under it, against a real fault proxy on 127.0.0.1 in front of a
static server: what is retried, what is resumed, what is given up and how fast."""

from __future__ import annotations

import email.utils
import fcntl
import hashlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bootstrap.errors import ChecksumError, NetworkError
from bootstrap.host import http, prune, retry
from bootstrap.host.cache import Cache
from bootstrap.host.parallel import map_parallel
from tests.faults.proxy import Fault, FaultProxy
from tests.fixtures.leftovers import temp_files
from tests.fixtures.server import Server

BODY = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(BODY).hexdigest()


def test_waits_grow_with_jitter_and_a_cap() -> None:
    policy = retry.Policy(attempts=8, backoff=1.0, max_wait=5.0)
    for n, step in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (7, 5.0)):
        waits = {policy.wait(n) for _ in range(200)}
        assert all(step / 2 <= w <= step for w in waits), (n, min(waits), max(waits))
        assert len(waits) > 100, "no jitter"
    assert policy.wait(1, asked=3.0) == 3.0, "Retry-After is honoured"
    assert policy.wait(1, asked=600.0) == 5.0, "and capped"


def test_tries_share_one_budget() -> None:
    tries = retry.Policy(attempts=3, backoff=0.001).tries()
    it = iter(tries)
    assert [next(it, None), next(it, None), next(it, None), next(it, None)] == [0, 1, 2, None]
    assert tries.used == 3


def test_retry_after_reads_seconds_and_dates() -> None:
    assert retry.retry_after("7") == 7.0
    assert retry.retry_after(None) == 0.0 and retry.retry_after("soon") == 0.0
    later = email.utils.formatdate(time.time() + 12, usegmt=True)
    assert 9 <= retry.retry_after(later) <= 12
    assert retry.retry_after("86400") == retry.MAX_WAIT


def test_a_drip_is_given_up_after_one_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(retry.TIMEOUT_ENV, "0.3")
    pace = retry.Pace()
    verdict = None
    started = time.monotonic()
    while verdict is None and time.monotonic() - started < 2:
        time.sleep(0.05)
        verdict = pace.received(1)
    assert verdict is not None and verdict.startswith("stalled:")
    fast = retry.Pace()
    time.sleep(0.35)
    assert fast.received(1 << 20) is None, "a steady transfer is not a stall"


@pytest.fixture
def proxied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FaultProxy, str]]:
    monkeypatch.setenv(retry.TIMEOUT_ENV, "0.5")
    monkeypatch.setattr(retry, "DEFAULT", retry.Policy(backoff=0.01))
    (tmp_path / "pool").mkdir()
    (tmp_path / "pool" / "big.deb").write_bytes(BODY)
    with Server(tmp_path) as server:
        proxy = FaultProxy(server.url)
        yield proxy, f"{proxy.url}/pool/big.deb"
        proxy.stop()


def _get(url: str, dest: Path, sha256: str | None = SHA) -> None:
    http.download(url, dest, size=len(BODY), sha256=sha256)


@pytest.mark.parametrize("kind", ["reset", "truncate", "stall", "short"])
def test_a_cut_body_is_resumed(kind: str, proxied: tuple[FaultProxy, str], tmp_path: Path) -> None:
    proxy, url = proxied
    proxy.add(Fault(kind, r"\.deb$", at=0.5, hold=5))
    _get(url, tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == BODY
    first, again = (s.range for s in proxy.seen)
    assert first is None and again is not None, "not resumed"
    # A reset may drop what was sent but not yet read; the rest went on from the last byte received.
    offset = int(again.removeprefix("bytes=").rstrip("-"))
    assert 0 < offset <= len(BODY) // 2 and (kind == "reset" or offset == len(BODY) // 2), again


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_answers_are_retried(status: int, proxied: tuple[FaultProxy, str], tmp_path: Path) -> None:
    proxy, url = proxied
    proxy.add(Fault("status", r"\.deb$", status=status, times=2))
    _get(url, tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == BODY and len(proxy.seen) == 3


def test_wrong_bytes_once_are_fetched_again(proxied: tuple[FaultProxy, str], tmp_path: Path) -> None:
    proxy, url = proxied
    proxy.add(Fault("wrong", r"\.deb$"))
    _get(url, tmp_path / "got")
    assert (tmp_path / "got").read_bytes() == BODY
    assert [s.range for s in proxy.seen] == [None, None], "a mismatching body is fetched whole again"


def test_wrong_bytes_always_is_a_checksum_error(proxied: tuple[FaultProxy, str], tmp_path: Path) -> None:
    proxy, url = proxied
    proxy.add(Fault("wrong", r"\.deb$", times=None))
    with pytest.raises(ChecksumError, match=f"checksum mismatch for {url}: expected sha256 {SHA}"):
        _get(url, tmp_path / "got")
    assert not (tmp_path / "got").exists() and list(tmp_path.glob(".got*")) == []


PERSISTENT_TIMEOUT = "0.2"
"""The read timeout against a fault that lasts: every attempt waits it out (nothing of the body is to be cut early),
so the 5 attempts take 5 of these. The drip sends a byte every 0.04 s: within the timeout, far below the pace."""


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        (Fault("drip", r"\.deb$", times=None, interval=0.04), "stalled"),
        (Fault("stall", r"\.deb$", times=None, hold=30), "read timed out"),
        (Fault("redirect", r"\.deb$", times=None), "more than 10 redirects"),
        (Fault("status", r"\.deb$", status=502, times=None), "502 Bad Gateway (5 attempts)"),
    ],
    ids=["drip", "stall", "redirect", "502"],
)
def test_persistent_faults_end_in_bounded_time(
    fault: Fault, words: str, proxied: tuple[FaultProxy, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(retry.TIMEOUT_ENV, PERSISTENT_TIMEOUT)
    proxy, url = proxied
    proxy.add(fault)
    started = time.monotonic()
    with pytest.raises(NetworkError) as raised:
        _get(url, tmp_path / "got")
    assert time.monotonic() - started < 10
    assert raised.value.message.startswith(f"cannot download {url}: ") and words in raised.value.message
    assert "\n" not in raised.value.message


def test_parallel_work_stops_at_the_first_failure_without_waiting() -> None:
    release = threading.Event()

    def job(n: int) -> int:
        if n == 0:
            raise ValueError("first")
        if n == 1:
            release.wait(30)
        return n * n

    started = time.monotonic()
    with pytest.raises(ValueError, match="first"):
        map_parallel(job, list(range(20)), 3)
    assert time.monotonic() - started < 5, "waited for a busy worker"
    release.set()
    assert map_parallel(lambda n: n * n, list(range(50)), 4) == [n * n for n in range(50)]


def test_temporary_files_of_a_dead_process_are_swept(cache: Cache) -> None:
    path = cache.temp("blob")
    path.write_bytes(b"half a download")
    stale = cache.root / "tmp" / "build-stale123"
    stale.mkdir()
    (stale / "x.part").write_bytes(b"left by a SIGKILL")
    (cache.root / "tmp" / "build-stale123.lock").touch()  # nobody holds it
    cache.ensure()
    assert not stale.exists(), "the abandoned directory was not swept"
    assert temp_files(cache.root) == [path], "the live process's own file was touched"


def test_half_written_files_of_a_dead_process_are_swept(cache: Cache) -> None:
    parsed = cache.area("parsed")
    left = parsed / ".abc.v3.text.99999.7.tmp"
    left.write_bytes(b"half an index")
    fresh = parsed / ".def.v3.text.99999.8.tmp"
    fresh.touch()  # empty and new: perhaps a writer that has not locked it yet
    busy = parsed / ".ghi.v3.text.1.9.tmp"
    with open(busy, "wb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(b"being written")
        cache.ensure()
        assert busy.exists(), "a file being written was removed"
    assert not left.exists(), "a half-written file was not swept"
    assert fresh.exists()


def test_a_deadline_ends_the_tries_and_their_waits() -> None:
    """No attempt begins after the deadline, nor a wait that would end after it (webhooks bound their total).
    Without the deadline these tries would take about 5 s; the bound checked is loose, for a loaded machine."""
    started = time.monotonic()
    deadline = started + 0.3
    tries = retry.Policy(attempts=50, backoff=0.05, max_wait=0.1).tries(deadline=deadline)
    begun = [time.monotonic() for _ in tries]
    assert 1 < len(begun) < 50 and tries.used == len(begun)
    # Each attempt began before the deadline (read just after it began: a loaded machine may pause us there).
    assert all(t < deadline + 0.25 for t in begun), "an attempt began after the deadline"
    assert time.monotonic() - started < 2.0


@pytest.mark.parametrize("kept", ["releases", "repomd"])
def test_half_written_files_of_a_verified_index_are_swept(cache: Cache, kept: str) -> None:
    """The slots of the indexes verified last (Debian's InRelease, an RPM repository's repomd.xml) are written with
    write_atomic too: what a killed build left there is swept, and `cache info` shows the area."""
    slot = cache.area(kept) / "0123abcd"
    slot.mkdir()
    left = slot / ".repomd.xml.99999.3.tmp"
    left.write_bytes(b"half a file")
    cache.ensure()
    assert not left.exists(), "a half-written file was not swept"
    assert kept in {a.name for a in prune.usage(cache)} and kept in prune.DESCRIPTIONS
