"""One HTTP POST of one batch to ``{host}/v1/batch``: encoding, gzip, auth and error mapping.

Retries are not decided here (see ``retry`` and ``uploader``); this module turns a response into
success or an ``APIError`` carrying the status and the ``Retry-After`` information.

Every POST goes through the module-level ``_session``, with the keyword arguments
analytics-python uses (``data``, ``headers``, ``timeout`` and, when set, ``proxies``), so tests
that patch ``segment_clone.request._session.post`` see what they saw upstream: ``data`` is the
JSON text (ASCII, non-ASCII characters escaped), or the gzipped bytes with ``gzip=True``.
``_session`` is a ``transport.Session``: a real ``requests.Session`` with a fast path.
"""

from __future__ import annotations

import logging
import math
import re
import time
import zlib
from base64 import b64encode
from collections.abc import Callable
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import orjson
import requests

from .compat import UPSTREAM_USER_AGENT, DatetimeSerializer
from .encoding import decode_message, dumps, encode_message
from .errors import APIError
from .transport import Session
from .utils import remove_trailing_slash

log = logging.getLogger("segment")

DEFAULT_HOST = "https://api.segment.io"
USER_AGENT = UPSTREAM_USER_AGENT
MAX_RETRY_AFTER_SECONDS = 300
GZIP_LEVEL = 3
"""zlib level for ``gzip=True``. On a 100-event batch of 60 KB, level 3 gave 6.4 KB in 0.21 ms,
level 6 gave 5.8 KB in 0.68 ms and level 9 5.7 KB in 1.1 ms: past 3, each byte saved costs a
lot of CPU on a thread that shares the GIL with the application."""
OAUTH_CLEARING_STATUSES = frozenset({400, 401, 403, 511})
PREPARED_FRESH_FOR = 1.0
"""Seconds a body encoded ahead of its turn may still be sent: its ``sentAt``, from which the
tracking API corrects the client's clock, must stay close to the time it is sent."""
_NON_ASCII = re.compile("[^\x00-\x7f]")

_session = Session()
"""The seam analytics-python's users patch; resolved at call time."""


def batch_url(host: str | None) -> str:
    return remove_trailing_slash(host or DEFAULT_HOST) + "/v1/batch"


class PreparedBatch(list[bytes]):
    """Encoded messages with their request body, encoded before their turn: a consumer does it
    while the batch before them is at the server. ``post`` sends that body while it is fresh."""

    def __init__(self, messages: list[bytes], write_key: str, gzip: bool) -> None:
        super().__init__(messages)
        self.settings = (write_key, gzip)
        self.data = _encode_body(write_key, gzip, {"batch": messages})
        self.encoded_at = time.monotonic()

    def body_for(self, write_key: str, gzip: bool) -> str | bytes | None:
        """The prepared body, or None when ``post`` must encode it again: the consumer's
        settings changed since (an assigned ``write_key`` or ``gzip``), or its ``sentAt`` is
        older than ``PREPARED_FRESH_FOR``."""
        if self.settings != (write_key, gzip):
            return None
        if time.monotonic() - self.encoded_at > PREPARED_FRESH_FOR:
            return None
        return self.data


class TokenSource(Protocol):
    """What ``post`` needs from an OAuth manager: a bearer token, and a way to drop it."""

    def get_token(self) -> str: ...

    def clear_token(self) -> None: ...


def post(
    write_key: str,
    host: str | None = None,
    gzip: bool = False,
    timeout: float = 15,
    proxies: dict[str, str] | None = None,
    oauth_manager: TokenSource | None = None,
    retry_count: int = 0,
    **kwargs: Any,
) -> requests.Response:
    """POST ``kwargs`` as the JSON body (usually ``batch=[...]``) and return the 2xx response.

    Items of ``batch`` may be message dicts or already-encoded JSON bytes; bytes are spliced
    into the body as they are; a fresh ``PreparedBatch`` is sent with the body encoded for it.
    Raises ``APIError`` for any other status and lets ``requests`` errors propagate, leaving
    the retry decision to the caller.
    """
    batch = kwargs.get("batch")
    data = batch.body_for(write_key, gzip) if isinstance(batch, PreparedBatch) else None
    if data is None:
        data = _encode_body(write_key, gzip, kwargs)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
    if retry_count > 0:
        headers["X-Retry-Count"] = str(retry_count)
    token = oauth_manager.get_token() if oauth_manager else None
    if token:
        headers["Authorization"] = f"Bearer {token}"
    else:
        headers["Authorization"] = "Basic " + b64encode(f"{write_key}:".encode()).decode("ascii")
    if gzip:
        headers["Content-Encoding"] = "gzip"
    request_kwargs: dict[str, Any] = {"data": data, "headers": headers, "timeout": timeout}
    if proxies:
        request_kwargs["proxies"] = proxies

    url = batch_url(host)
    log.debug("making request: %d bytes, retry %d", len(data), retry_count)
    res = _session.post(url, **request_kwargs)

    if 200 <= res.status_code < 300:
        log.debug("data uploaded successfully")
        return res
    if 300 <= res.status_code < 400:
        log.error("Unexpected redirect (%s) from %s; batch not uploaded", res.status_code, url)
        raise APIError(res.status_code, "redirect", res.reason, res)
    if oauth_manager and res.status_code in OAUTH_CLEARING_STATUSES:
        oauth_manager.clear_token()
    raise _api_error(res)


def _encode_body(write_key: str, gzip: bool, body: dict[str, Any]) -> str | bytes:
    """The request body: JSON text (ASCII), or its gzip bytes with ``gzip``."""
    if "batch" in body:
        body["batch"] = orjson.Fragment(_json_array(body["batch"]))
    body.setdefault("sentAt", datetime.now(timezone.utc).isoformat())
    body["writeKey"] = write_key
    raw = dumps(body)
    if gzip:
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        return compressor.compress(raw) + compressor.flush()
    return _ascii_text(raw)


def seam_batch(seam: Callable[..., Any], batch: list[Any]) -> list[Any]:
    """``batch`` as ``seam`` takes it: this module's ``post`` splices encoded messages into
    the body as they are; anything patched in its place gets message dicts, as upstream's
    ``post`` was given."""
    if seam is post:
        return batch
    return [decode_message(m) if isinstance(m, bytes) else m for m in batch]


def _json_array(messages: list[Any]) -> bytes:
    """The batch as one JSON array: encoded messages are joined as they are (the consumer's
    case), message dicts are encoded first."""
    try:
        return b"[" + b",".join(messages) + b"]"
    except TypeError:  # not all bytes
        encoded = (m if isinstance(m, bytes) else encode_message(m)[0] for m in messages)
        return b"[" + b",".join(encoded) + b"]"


def _ascii_text(raw: bytes) -> str:
    """The JSON as text a plain ``requests.Session`` sends intact: non-ASCII characters, which
    only occur inside JSON strings, become ``\\u`` escapes, as ``json.dumps`` writes them."""
    if raw.isascii():
        return raw.decode("ascii")
    return _NON_ASCII.sub(_escape, raw.decode("utf-8"))


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def _api_error(res: requests.Response) -> APIError:
    if 300 <= res.status_code < 400:
        return APIError(res.status_code, "redirect", res.reason, res)
    try:
        payload = res.json()
        return APIError(res.status_code, payload["code"], payload["message"], res)
    except (ValueError, KeyError, TypeError):
        return APIError(res.status_code, "unknown", res.text, res)


def parse_retry_after(response: requests.Response | None) -> int | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date), capped at 300.

    Returns None when the header is missing, unparseable or names a time already past; an
    HTTP-date is rounded up so that a retry never comes before the server's time.
    """
    if response is None:
        return None
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    if value.lstrip("-").isdigit():
        return min(max(int(value), 0), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        log.warning("Unrecognized Retry-After format: %r", value)
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    delay = math.ceil((when - datetime.now(timezone.utc)).total_seconds())
    if delay <= 0:
        return None
    return min(delay, MAX_RETRY_AFTER_SECONDS)


__all__ = [
    "MAX_RETRY_AFTER_SECONDS",
    "USER_AGENT",
    "APIError",
    "DatetimeSerializer",
    "TokenSource",
    "batch_url",
    "parse_retry_after",
    "post",
    "seam_batch",
]
