"""Work on many items in threads that an interrupted build does not wait for."""

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def map_parallel(job: Callable[[T], R], items: Sequence[T], workers: int) -> list[R]:
    """`[job(item) for item in items]`, computed in up to `workers` threads; the first failure stops handing out
    work and is raised.

    The threads are daemons and nobody waits for those still busy when this returns early (a failure, or
    Ctrl-C in the main thread): an interrupted build ends at once, not when a stalled download times out.
    What such a thread leaves in the cache's temporary directory goes with the process (see `Cache.temp`)."""
    todo: queue.SimpleQueue[int] = queue.SimpleQueue()
    for i in range(len(items)):
        todo.put(i)
    done: queue.SimpleQueue[tuple[int, R | None, BaseException | None]] = queue.SimpleQueue()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                i = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((i, job(items[i]), None))
            except BaseException as exc:
                done.put((i, None, exc))
                return

    for _ in range(min(workers, len(items))):
        threading.Thread(target=work, name="worker", daemon=True).start()
    results: dict[int, R | None] = {}
    try:
        while len(results) < len(items):
            i, result, failure = done.get()
            if failure is not None:
                raise failure
            results[i] = result
    finally:
        stop.set()
    return [results[i] for i in range(len(items))]  # type: ignore[misc]


READ_AHEAD_THREADS = "read-ahead"
"""The name prefix of `read_ahead`'s threads."""


@contextmanager
def read_ahead(
    job: Callable[[T], R],
    items: Sequence[T],
    window: int,
    workers: int = 2,
    discard: Callable[[R], None] | None = None,
) -> Iterator[Iterator[R]]:
    """`job(item)` of each item in order, the next `window` computed in threads while the caller works on the
    current one. When the context ends (all taken, or the caller failed), work not begun is cancelled, results
    not taken are given to `discard`, and the threads are waited for: here, in the caller's thread. Left to the
    garbage collector, that wait could run in whatever thread collects (one being started, even) and deadlock."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=READ_AHEAD_THREADS)
    pending: deque[Future[R]] = deque()

    def results() -> Iterator[R]:
        pending.extend(pool.submit(job, item) for item in items[:window])
        for i in range(len(items)):
            if i + window < len(items):
                pending.append(pool.submit(job, items[i + window]))
            yield pending.popleft().result()

    try:
        yield results()
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True)
        if discard is not None:
            for future in pending:
                if not future.cancelled() and future.exception() is None:
                    discard(future.result())


class InOrder:
    """Calls run one after another in a thread of their own, in the order given, while the caller goes on; at most
    `bound` are waiting at once (beyond that, the caller waits for the oldest): a bounded queue, so a stream handed
    on is never held in memory whole."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: deque[Future[Any]] = deque()

    def submit(self, fn: Callable[..., Any], *args: Any) -> "Future[Any]":
        future = self._pool.submit(fn, *args)
        self._pending.append(future)
        while len(self._pending) > self.bound:
            self._pending.popleft().result()
        return future

    def settle(self) -> None:
        """Wait for every call handed on (the first failure raised)."""
        while self._pending:
            self._pending.popleft().result()

    def close(self, cancel: bool = False) -> None:
        """End the thread (`cancel`: calls not begun are dropped)."""
        self._pool.shutdown(cancel_futures=cancel)
