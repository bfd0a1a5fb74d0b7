"""The one retry policy: which failures are worth another try, how long to wait, how long a transfer may stall.

Mirror downloads (`bootstrap.host.http`), registry requests (`bootstrap.registry`) and webhooks all use it:

- up to ATTEMPTS tries; between them an exponential wait (BACKOFF, doubling, at most MAX_WAIT) with jitter
  (a random point in its upper half, so many builds that failed together do not retry together), or longer
  when the server asked for it (Retry-After, at most MAX_WAIT);
- every read of a response waits at most the read timeout (`$BOOTSTRAP_NET_TIMEOUT`, default 30 s), and a body
  that arrives slower than MIN_RATE bytes a second over that long is given up as stalled: a server that stops
  sending, or drips bytes (a "slow loris"), ends the attempt in bounded time, and the retries bound the rest.
"""

import email.utils
import os
import random
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass

ATTEMPTS = 5
BACKOFF = 0.5
MAX_WAIT = 30.0
CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 30.0
TIMEOUT_ENV = "BOOTSTRAP_NET_TIMEOUT"
MIN_RATE = 1024
"""Bytes a second a body must average over each read-timeout window."""


def env_seconds(name: str, default: float) -> float:
    """Seconds from the environment variable `name` when it holds a positive number, else `default`."""
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        return default
    return value if value > 0 else default


def read_timeout() -> float:
    """Seconds one read may wait for data (`$BOOTSTRAP_NET_TIMEOUT`, else READ_TIMEOUT)."""
    return env_seconds(TIMEOUT_ENV, READ_TIMEOUT)


def timeouts() -> tuple[float, float]:
    """(connect, read) timeouts for requests."""
    return CONNECT_TIMEOUT, read_timeout()


@dataclass(frozen=True)
class Policy:
    attempts: int = ATTEMPTS
    backoff: float = BACKOFF
    max_wait: float = MAX_WAIT

    def wait(self, retry: int, asked: float = 0.0) -> float:
        """Seconds before retry number `retry` (1, 2, ...): the exponential step with jitter, or what the server
        asked for when that is longer; never more than `max_wait`."""
        step = min(self.max_wait, self.backoff * 2 ** (retry - 1))
        return min(self.max_wait, max(asked, random.uniform(step / 2, step)))

    def tries(self, deadline: float | None = None) -> "Tries":
        return Tries(self, deadline)


class Tries:
    """`for attempt in policy.tries():` runs the body up to `attempts` times, waiting between them; set
    `asked` to the seconds a server asked to wait (Retry-After) before the next one. Several loops may share
    one budget by drawing from one iterator (`next(it, None)` is None when it is spent). With a `deadline`
    (`time.monotonic()`), no attempt begins after it, nor a wait that would end after it."""

    def __init__(self, policy: Policy, deadline: float | None = None) -> None:
        self.policy = policy
        self.deadline = deadline
        self.asked = 0.0
        self.used = 0
        """Attempts begun so far."""

    def left(self) -> float:
        """Seconds until the deadline (infinite without one)."""
        return float("inf") if self.deadline is None else self.deadline - time.monotonic()

    def __iter__(self) -> Iterator[int]:
        for attempt in range(self.policy.attempts):
            if attempt:
                wait = self.policy.wait(attempt, self.asked)
                if wait >= self.left():
                    return
                time.sleep(wait)
                self.asked = 0.0
            if self.left() <= 0:
                return
            self.used = attempt + 1
            yield attempt


DEFAULT = Policy()


def retry_after(value: str | None) -> float:
    """Seconds a `Retry-After` header asks for (a number or an HTTP date), at most MAX_WAIT; 0 when absent."""
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return 0.0
    return min(max(seconds, 0.0), MAX_WAIT)


class Pace:
    """Gives up on a body that arrives slower than MIN_RATE over a read-timeout window (a stall or a drip)."""

    def __init__(self) -> None:
        self.window = read_timeout()
        self.mark = time.monotonic()
        self.done = 0
        self.at_mark = 0

    def received(self, n: int) -> str | None:
        """Count `n` more bytes; a reason to give up when the last window was too slow, else None."""
        self.done += n
        now = time.monotonic()
        if now - self.mark < self.window:
            return None
        got, spent = self.done - self.at_mark, now - self.mark
        if got < MIN_RATE * spent:
            return f"stalled: {got} bytes in {spent:.0f} s (less than {MIN_RATE} bytes/s)"
        self.mark, self.at_mark = now, self.done
        return None


_REASONS = (
    re.compile(r"certificate verify failed: ([^(')\"]+)"),
    re.compile(r"\[SSL: [A-Z_]+\] ([^(')\"]+)"),
    re.compile(r"\[Errno -?\d+\] ([^(')\"]+)"),
    re.compile(r"(?:RemoteDisconnected|ConnectionResetError|BrokenPipeError)\(['\"\d, ]*'?([^'\"]+)"),
    re.compile(r"IncompleteRead\((\d+ bytes read, \d+ more expected)"),
    re.compile(r"(Read timed out|timed out|Exceeded \d+ redirects)"),
)


def reason(exc: BaseException) -> str:
    """The useful words of a requests/urllib3 exception (`connection reset by peer`), on one line."""
    text = str(exc)
    for pattern in _REASONS:
        m = pattern.search(text)
        if m:
            words = " ".join(m.group(1).split()).rstrip(" .,").lower()
            return f"connection closed early ({words})" if "more expected" in words else words
    return " ".join(text.split())[:200]
