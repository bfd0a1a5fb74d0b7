"""`read_ahead`: results in order, computed ahead in threads; when the caller fails, work not begun is cancelled,
results not taken are discarded, and the threads are gone before the failure reaches the caller (never left to
the garbage collector, whose finalizer, run inside a thread being started, once hung the unit suite)."""

import threading
import time

import pytest

from bootstrap.host.parallel import READ_AHEAD_THREADS, read_ahead


def alive() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(READ_AHEAD_THREADS)]


def test_results_come_in_order_computed_ahead() -> None:
    started: list[int] = []

    def job(n: int) -> int:
        started.append(n)
        time.sleep(0.01 * (n % 3))  # out of order inside, in order outside
        return n * n

    with read_ahead(job, list(range(20)), window=4) as results:
        assert list(results) == [n * n for n in range(20)]
    assert sorted(started) == list(range(20)) and not alive()


def test_a_failing_caller_cancels_discards_and_waits() -> None:
    done: list[int] = []
    discarded: list[int] = []

    def job(n: int) -> int:
        time.sleep(0.02)
        done.append(n)
        return n

    with pytest.raises(RuntimeError, match="caller failed"):  # noqa: SIM117 (the failure is the caller's)
        with read_ahead(job, list(range(50)), window=4, discard=discarded.append) as results:
            for n in results:
                if n == 2:
                    raise RuntimeError("caller failed")
    assert not alive(), "the threads are gone when the failure reaches the caller"
    assert len(done) < 50, "work not begun was cancelled"
    assert discarded and set(discarded) <= set(done) and not set(discarded) & {0, 1, 2}
