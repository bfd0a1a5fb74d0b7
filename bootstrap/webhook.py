"""Webhooks: a JSON event POSTed after a build or push, HMAC-signed when a secret is set, retried."""

import hashlib
import hmac
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from bootstrap import retry
from bootstrap.log import log
from bootstrap.registry.reference import parse_reference

SECRET_ENV = "BOOTSTRAP_WEBHOOK_SECRET"
SIGNATURE_HEADER = "X-Bootstrap-Signature-256"
POLICY = retry.Policy(attempts=4)


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
    tries = POLICY.tries()
    for _ in tries:
        try:
            resp = requests.post(url, data=body, headers=headers, timeout=(retry.CONNECT_TIMEOUT, 15))
        except requests.RequestException as exc:
            last = retry.reason(exc)
            continue
        if 200 <= resp.status_code < 300:
            return True
        last = f"HTTP {resp.status_code}"
        tries.asked = retry.retry_after(resp.headers.get("Retry-After"))
    log.warning(
        "warning: webhook %s failed after %d attempts (%s); the build itself succeeded", url, POLICY.attempts, last
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
