"""Webhooks: a JSON event POSTed after a build or push, HMAC-signed when a secret is set, retried."""

import hashlib
import hmac
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import requests

from bootstrap.log import log

SECRET_ENV = "BOOTSTRAP_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Bootstrap-Signature-256"
ATTEMPTS = 4
BACKOFF = 0.5


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of the exact body bytes."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send(url: str, event: dict[str, Any], secret: str | None = None) -> bool:
    """POST the event; retry dropped connections and non-2xx answers with backoff. True when delivered."""
    body = json.dumps(event, sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "bootstrap-webhook",
        "X-Bootstrap-Event": event["event"],
    }
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, body)
    last = ""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(BACKOFF * 2 ** (attempt - 1))
        try:
            resp = requests.post(url, data=body, headers=headers, timeout=(5, 15))
        except requests.RequestException as exc:
            last = str(exc)
            continue
        if 200 <= resp.status_code < 300:
            return True
        last = f"HTTP {resp.status_code}"
    log.warning("warning: webhook %s failed after %d attempts (%s); the build itself succeeded", url, ATTEMPTS, last)
    return False


def notify(urls: Sequence[str], event: dict[str, Any]) -> list[str]:
    """Send the event to every URL; return the ones that failed."""
    secret = os.environ.get(SECRET_ENV) or None
    return [url for url in urls if not send(url, event, secret)]
