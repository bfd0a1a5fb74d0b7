"""Webhooks: a JSON event POSTed after a build or push, signed when a secret is set, retried within bounds.

Headers as Standard Webhooks has them: `webhook-id` (one per event, the same on every attempt, so a receiver
can drop a repeat), `webhook-timestamp` (seconds since the epoch, of the attempt) and, with a secret
(`BOOTSTRAP_WEBHOOK_SECRET`), `webhook-signature: v1,<base64 of HMAC-SHA256 over "{id}.{timestamp}.{body}">`.
The key is the secret's UTF-8 bytes, or, for a secret written `whsec_<base64>`, the bytes it encodes. A
receiver checks all three with `verify_delivery` (the signature in constant time, the time within a
tolerance, the id not seen before), so a captured delivery cannot be played again. The body-only
`X-Bootstrap-Signature-256` of earlier versions is no longer sent: anyone who saw one delivery could replay it
for ever. A receiver in Python:

    from bootstrap.publish.webhook import DeliveryRefused, verify_delivery
    try:
        verify_delivery(secret, dict(request.headers), request.body, tolerance=300, seen=recent_ids)
    except DeliveryRefused as exc:
        return 400, exc.message

Bounded: each attempt (connect, send, the answer's status line and headers) ends after DELIVERY_TIMEOUT
seconds of wall-clock time, however slowly the receiver drips bytes, and all the attempts to one URL, waits
included, after `$BOOTSTRAP_WEBHOOK_TIMEOUT` (TOTAL_TIMEOUT) seconds. The answer's body is never read: its
status decides: a 2xx delivers, what `retry.classify` calls transient (429, 5xx, no answer) is tried again
(`retry.call`), any other 4xx is a failure at once. Redirects are not followed (the signed body would go to
another host, or a 303 would turn the POST into a GET): a 3xx is a failure. The session is `sessions.new`'s,
with sockets a watchdog can shut. Messages show a URL without its password or query.
"""

import base64
import hashlib
import hmac
import json
import os
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Mapping, MutableSet, Sequence
from contextlib import suppress
from types import TracebackType
from typing import Any

import requests
import urllib3
import urllib3.connection

from bootstrap.errors import BootstrapError
from bootstrap.host import retry, sessions
from bootstrap.log import log
from bootstrap.registry.reference import parse_reference

SECRET_ENV = "BOOTSTRAP_WEBHOOK_SECRET"
TIMEOUT_ENV = "BOOTSTRAP_WEBHOOK_TIMEOUT"
POLICY = retry.Policy(attempts=4)
DELIVERY_TIMEOUT = 20.0
"""Seconds one attempt may take, from connecting to the answer's last header."""
TOTAL_TIMEOUT = 60.0
"""Seconds all the attempts to one URL may take (`$BOOTSTRAP_WEBHOOK_TIMEOUT`)."""
TOLERANCE = 300
"""Seconds a receiver accepts between a delivery's timestamp and its own clock (Standard Webhooks' default)."""
ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER = "webhook-id", "webhook-timestamp", "webhook-signature"


class DeliveryRefused(BootstrapError):
    """A received delivery that `verify_delivery` does not accept."""


# --- signing -------------------------------------------------------------------------------------------------


def _key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        with suppress(ValueError):
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    return secret.encode()


def signature(secret: str, delivery_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64>`: HMAC-SHA256 of `{id}.{timestamp}.{body}`."""
    signed = f"{delivery_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def verify_delivery(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    tolerance: float = TOLERANCE,
    seen: MutableSet[str] | None = None,
    now: float | None = None,
) -> str:
    """Check a delivery as its receiver and return its id: signed with `secret` over its id, timestamp and
    exact body (compared in constant time), sent at most `tolerance` seconds from now, and, given the set of
    ids already `seen` (kept at least `tolerance` seconds), not seen before (then added). Raises
    DeliveryRefused otherwise."""
    h = {k.lower(): v for k, v in headers.items()}
    delivery_id, stamp, signatures = h.get(ID_HEADER), h.get(TIMESTAMP_HEADER), h.get(SIGNATURE_HEADER)
    if not (delivery_id and stamp and signatures):
        raise DeliveryRefused(
            f"the delivery is not signed (no {ID_HEADER}, {TIMESTAMP_HEADER} or {SIGNATURE_HEADER} header)",
            f"set {SECRET_ENV} for bootstrap; refuse unsigned deliveries",
        )
    try:
        timestamp = int(stamp)
    except ValueError:
        raise DeliveryRefused(f"{TIMESTAMP_HEADER} {stamp!r} is not a number", "refuse the delivery") from None
    expected = signature(secret, delivery_id, timestamp, body).encode()
    if not any(hmac.compare_digest(expected, s.encode()) for s in signatures.split()):
        raise DeliveryRefused(
            "the delivery's signature does not match", f"the body was changed, or the secrets differ ({SECRET_ENV})"
        )
    age = (time.time() if now is None else now) - timestamp
    if abs(age) > tolerance:
        when = f"{age:.0f} s ago" if age > 0 else f"{-age:.0f} s ahead of this clock"
        raise DeliveryRefused(
            f"delivery {delivery_id} was sent {when}, beyond the {tolerance:.0f} s tolerated",
            "an old delivery played again, or a clock is wrong (set both clocks right, e.g. with NTP)",
        )
    if seen is not None:
        if delivery_id in seen:
            raise DeliveryRefused(f"delivery {delivery_id} was received before", "a delivery played again: drop it")
        seen.add(delivery_id)
    return delivery_id


# --- bounded attempts ----------------------------------------------------------------------------------------

_watching = threading.local()


def _watch_current(sock: socket.socket | None) -> None:
    watch: _Watch | None = getattr(_watching, "watch", None)
    if watch is not None and sock is not None:
        watch.add(sock)


class _HTTPConnection(urllib3.connection.HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _watch_current(self.sock)


class _HTTPSConnection(urllib3.connection.HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _watch_current(self.sock)


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _Adapter(sessions.Adapter):
    """Connections whose sockets the attempt's watchdog can shut (through an HTTP proxy too)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> urllib3.PoolManager:
        manager: urllib3.PoolManager = super().proxy_manager_for(proxy, **kwargs)
        if type(manager) is urllib3.ProxyManager:  # not SOCKS, whose connections are of their own
            manager.pool_classes_by_scheme = _POOLS
        return manager


class _Watch:
    """Shuts the attempt's sockets when its time is up: a blocked read then returns at once."""

    def __init__(self, seconds: float) -> None:
        self.socks: list[socket.socket] = []
        self.expired = False
        self.lock = threading.Lock()
        self.timer = threading.Timer(seconds, self.expire)
        self.timer.daemon = True

    def add(self, sock: socket.socket) -> None:
        with self.lock:
            self.socks.append(sock)
            if self.expired:
                _shut(sock)

    def expire(self) -> None:
        with self.lock:
            self.expired = True
            for sock in self.socks:
                _shut(sock)

    def __enter__(self) -> "_Watch":
        _watching.watch = self
        self.timer.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.timer.cancel()
        _watching.watch = None


def _shut(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Undelivered(Exception):
    """An answer that says the delivery will not be taken (a redirect, a 4xx): not tried again."""


def _attempt(url: str, body: bytes, headers: dict[str, str], seconds: float) -> None:
    """One POST bounded to `seconds`; returns when the receiver took it (2xx). Raises retry.Transient when it is
    worth another try, _Undelivered when not (the answer's body unread, the connection closed)."""
    timeout = (min(retry.CONNECT_TIMEOUT, seconds), min(retry.read_timeout(), seconds))
    with _Watch(seconds) as watch, sessions.new(redirects=False, adapter=_Adapter) as session:
        try:
            resp = session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True)
        except requests.RequestException as exc:
            if watch.expired:
                raise retry.Transient(f"no answer within {seconds:.0f} s") from exc
            raise
        resp.close()  # unread: the status decides
    if 200 <= resp.status_code < 300:
        return
    retry.check_status(resp)
    why = f"HTTP {resp.status_code}"
    if 300 <= resp.status_code < 400:
        target = resp.headers.get("Location")
        why += f", a redirect{f' to {shown(target)}' if target else ''} (not followed)"
    raise _Undelivered(why)


def total_timeout() -> float:
    """Seconds all attempts to one URL may take (`$BOOTSTRAP_WEBHOOK_TIMEOUT`, else TOTAL_TIMEOUT)."""
    return retry.env_seconds(TIMEOUT_ENV, TOTAL_TIMEOUT)


# --- sending -------------------------------------------------------------------------------------------------


def shown(url: str) -> str:
    """The URL for messages: without the user and password or the query (they may hold credentials)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"***@{host}" if "@" in parts.netloc else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def _scrub(text: str, url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    for hidden in (parts.password, parts.username, parts.query):
        if hidden and len(hidden) >= 4:  # a user name may be a token; a shorter one would mangle the words
            text = text.replace(hidden, "***")
    return text


def send(url: str, event: dict[str, Any], secret: str | None = None) -> bool:
    """POST the event; retry what `retry.classify` calls transient (dropped connections, time-outs, 429, 5xx)
    with backoff, within `total_timeout()`. True when delivered."""
    body = json.dumps(event, sort_keys=True).encode()
    delivery_id = "msg_" + secrets.token_hex(16)
    tries = POLICY.tries(deadline=time.monotonic() + total_timeout())

    def once() -> None:
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "bootstrap-webhook",
            "X-Bootstrap-Event": event["event"],
            ID_HEADER: delivery_id,
            TIMESTAMP_HEADER: str(stamp),
        }
        if secret:
            headers[SIGNATURE_HEADER] = signature(secret, delivery_id, stamp, body)
        _attempt(url, body, headers, min(DELIVERY_TIMEOUT, tries.left()))

    try:
        retry.call(once, tries)
        return True
    except retry.GaveUp as exc:
        last = exc.last.why
    except _Undelivered as exc:
        last = str(exc)
    except requests.RequestException as exc:
        last = retry.reason(exc)
    log.warning(
        "warning: webhook %s failed after %d attempt(s) (%s); the build itself succeeded",
        shown(url),
        tries.used,
        _scrub(last, url),
    )
    return False


def notify(urls: Sequence[str], event: dict[str, Any]) -> list[str]:
    """Send the event to every URL; return the ones that failed."""
    secret = os.environ.get(SECRET_ENV) or None
    return [url for url in urls if not send(url, event, secret)]


def push_event(ref: str, digest: str, fields: Mapping[str, Any], pushed_at: float) -> dict[str, Any]:
    """The event for one pushed image: our fields, and Docker Hub's webhook shape beside them (`push_data` with
    `tag` and `pushed_at`, `repository` with `repo_name`, `namespace` and `name`), so that receivers written for
    Docker Hub's webhooks work unchanged."""
    target = parse_reference(ref)
    namespace, _, name = target.repository.rpartition("/")
    return {
        **fields,
        "event": "push",
        "tags": [ref],
        "digest": digest,
        "push_data": {
            "pushed_at": int(pushed_at),
            "pusher": "bootstrap",
            "tag": target.tag or "latest",
            "images": [digest],
        },
        "repository": {
            "repo_name": target.repository,
            "namespace": namespace,
            "name": name,
            "repo_url": f"{target.host}/{target.repository}",
            "status": "Active",
        },
    }
