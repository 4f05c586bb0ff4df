"""A minimal HTTP client for talking to a collector in tests, byte for byte (no SDK involved)."""

from __future__ import annotations

import gzip as gzip_module
import http.client
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        res = conn.getresponse()
        return Reply(res.status, {k.lower(): v for k, v in res.getheaders()}, res.read())
    finally:
        conn.close()


def post(
    url: str,
    path: str,
    payload: Any,
    *,
    gzip: bool = False,
    headers: dict[str, str] | None = None,
) -> Reply:
    """POST ``payload`` (JSON-encoded unless already bytes), gzip-compressed if asked."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    if gzip:
        body = gzip_module.compress(body)
        all_headers["Content-Encoding"] = "gzip"
    return call(url, "POST", path, body, all_headers)


def get(url: str, path: str) -> Any:
    reply = call(url, "GET", path)
    assert reply.status == 200, reply
    return reply.json()


def track(user: str = "u1", event: str = "Clicked", message_id: str | None = None) -> Any:
    msg: dict[str, Any] = {"type": "track", "userId": user, "event": event, "properties": {}}
    if message_id is not None:
        msg["messageId"] = message_id
    return msg
