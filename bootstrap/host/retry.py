"""The one retry call: which failures are worth another try, how long to wait, how long a transfer may stall.

Mirror downloads (`bootstrap.host.http`), registry requests and blob uploads (`bootstrap.registry`) and webhooks
all go through `call(attempt, policy)`, and `classify` is the one answer to "is this worth another try?":

- yes (`Transient`): a connection refused, reset or dropped, a time-out, a TLS handshake cut off, a body cut
  short or stalled (`Pace`), an answer 429 or 5xx (but 501 and 505, which say "never"), a body that does not
  match the digest it is fetched by, and whatever a caller raises as `Transient` itself;
- no: every other answer (4xx, redirects past the limit), an untrusted certificate, an answer whose head is
  too large, and every verdict of ours (a BootstrapError that is not also a Transient): these end the call at
  once.

A client adds a failure of its own by raising `Transient` (with `mismatch=True` for a digest that does not
match); it adds a recovery (resume a chunk, ask for a new token) inside its attempt, or by sharing one `Tries`
between loops. A new client gets its session from `bootstrap.host.sessions.new`.

The policy:

- up to ATTEMPTS tries; between them an exponential wait (BACKOFF, doubling, at most MAX_WAIT) with jitter
  (a random point in its upper half, so many builds that failed together do not retry together), or longer
  when the server asked for it (Retry-After, at most MAX_WAIT);
- every read of a response waits at most the read timeout (`$BOOTSTRAP_NET_TIMEOUT`, default 30 s), and a body
  that arrives slower than MIN_RATE bytes a second over that long is given up as stalled: a server that stops
  sending, or drips bytes (a "slow loris"), ends the attempt in bounded time, and the retries bound the rest.
"""

import functools
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # requests loads when the network is first used (see _network), not with every command
    import requests

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
    """The attempts of one call: `begin()` waits as the policy says and says whether another attempt may start.
    `for attempt in policy.tries():` runs a body up to `attempts` times; set `asked` to the seconds a server
    asked to wait (Retry-After) before the next one. Several loops share one budget by sharing one Tries (a
    chunked upload resumes a chunk and restarts a session from the same attempts). With a `deadline`
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

    def begin(self) -> bool:
        """Wait before the next attempt (none before the first) and count it; False when none may begin."""
        if self.used >= self.policy.attempts:
            return False
        if self.used:
            wait = self.policy.wait(self.used, self.asked)
            if wait >= self.left():
                return False
            time.sleep(wait)
            self.asked = 0.0
        if self.left() <= 0:
            return False
        self.used += 1
        return True

    def __iter__(self) -> Iterator[int]:
        while self.begin():
            yield self.used - 1


DEFAULT = Policy()


def retry_after(value: str | None) -> float:
    """Seconds a `Retry-After` header asks for (a number or an HTTP date), at most MAX_WAIT; 0 when absent."""
    if not value:
        return 0.0
    try:
        seconds = float(value)
    except ValueError:
        import email.utils  # the network's modules load when it is used (see _network)

        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return 0.0
    return min(max(seconds, 0.0), MAX_WAIT)


class Pace:
    """Gives up on a body that arrives slower than MIN_RATE over a read-timeout window (a stall or a drip)."""

    def __init__(self, window: float | None = None) -> None:
        self.window = read_timeout() if window is None else window
        """Seconds over which the pace is judged: the read timeout of the requests it watches."""
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


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every one it was raised from or wraps (requests nests urllib3's and http.client's)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        stack += [e.__cause__, e.__context__, *(a for a in e.args if isinstance(a, BaseException))]


# --- the one classification ----------------------------------------------------------------------------------


class Transient(Exception):
    """A failure worth another try: `why` in a few words, the seconds the server asked to wait (Retry-After),
    and whether a body did not match the digest it was fetched by (if that is the last word, a checksum error)."""

    def __init__(self, why: str, wait: float = 0.0, mismatch: bool = False) -> None:
        super().__init__(why)
        self.why = why
        self.wait = wait
        self.mismatch = mismatch


class GaveUp(Exception):
    """The attempts ran out on transient failures: the last one, and how many attempts were made."""

    def __init__(self, last: Transient, attempts: int) -> None:
        super().__init__(f"{last.why} ({attempts} attempts)")
        self.last = last
        self.attempts = attempts


NEVER_STATUS = frozenset({501, 505})
"""Server errors that say the request will never work (not implemented, HTTP version not supported)."""


def transient_status(status: int) -> bool:
    """Whether an answer with this status is worth another try: 429 and 5xx (but NEVER_STATUS)."""
    return status == 429 or (500 <= status < 600 and status not in NEVER_STATUS)


def check_status(resp: "requests.Response") -> None:
    """Raise Transient (with the server's Retry-After, the answer closed) when `resp` is worth another try."""
    if transient_status(resp.status_code):
        resp.close()
        raise Transient(f"{resp.status_code} {resp.reason}", retry_after(resp.headers.get("Retry-After")))


def untrusted_certificate(exc: BaseException) -> bool:
    """Whether the failure is a certificate that does not verify (a verdict, not a hiccup)."""
    import ssl

    return any(
        isinstance(e, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(e) for e in causes(exc)
    )


def header_overflow(exc: BaseException) -> str | None:
    """What was too large when the HTTP library gave up on an answer's head (too long a line, too many lines)."""
    import http.client

    for e in causes(exc):
        if isinstance(e, http.client.LineTooLong):
            kind = "status line" if "status line" in str(e) else "header line"
            return f"a response {kind} is longer than 64 KiB"
        if isinstance(e, http.client.HTTPException) and str(e).startswith("got more than") and "headers" in str(e):
            return "the response has more than 100 header lines"
    return None


@functools.cache
def _network() -> tuple[tuple[type[BaseException], ...], type[BaseException]]:
    """The exceptions that are a network failure, and requests' redirect loop among them (which is not worth
    another try)."""
    import requests
    import urllib3

    failures = (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.HTTPError,
        ConnectionError,
        TimeoutError,
    )
    return failures, requests.TooManyRedirects


def classify(exc: BaseException) -> Transient | None:
    """The one rule: the Transient an exception amounts to when it is worth another try, else None."""
    if isinstance(exc, Transient):
        return exc
    network, redirects = _network()
    if isinstance(exc, redirects) or not isinstance(exc, network):
        return None
    if untrusted_certificate(exc) or header_overflow(exc):
        return None
    failure = Transient(reason(exc))
    failure.__cause__ = exc
    return failure


T = TypeVar("T")


def call(
    attempt: Callable[[], T],
    tries: Policy | Tries | None = None,
    on_retry: Callable[[Transient, Tries], None] | None = None,
) -> T:
    """`attempt()` until it returns, as long as what it raises is transient (`classify`) and the tries (a
    Policy, DEFAULT when None, or a Tries shared with other loops or bounded by a deadline) last; any other
    exception goes up at once. `on_retry` hears of each transient failure. Raises GaveUp when the tries run out."""
    budget = tries if isinstance(tries, Tries) else (tries or DEFAULT).tries()
    last = Transient("no attempt began (no time was left)")
    while budget.begin():
        try:
            return attempt()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            last, budget.asked = failure, failure.wait
            if on_retry is not None:
                on_retry(failure, budget)
    raise GaveUp(last, budget.used) from last
