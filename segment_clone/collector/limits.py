"""Bounded request bodies: the collector never reads or inflates more than it will accept.

The Segment API limits a request to 500 KB and a message to 32 KB. A gzip body is inflated
with ``max_length``, so a small "gzip bomb" costs at most the limit in memory, not its full
inflated size.
"""

from __future__ import annotations

import zlib
from typing import Any, Protocol

import orjson

from .routing import Headers, HTTPError

MAX_BODY_BYTES = 500 * 1024
MAX_MESSAGE_BYTES = 32 * 1024
DRAIN_BYTES = 4 * MAX_BODY_BYTES
"""An oversized body up to this size is read and thrown away before the 413 is sent; a
larger one is not read at all (the connection is closed under the sender)."""


class Readable(Protocol):
    def read(self, __size: int) -> bytes: ...


def read_body(rfile: Readable, headers: Headers, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read the request body (inflated when gzip-encoded), refusing more than ``limit`` bytes."""
    if "chunked" in (headers.get("Transfer-Encoding") or "").lower():
        raise HTTPError(411, "length_required", "send a Content-Length", close=True)
    try:
        length = int(headers.get("Content-Length") or 0)
    except ValueError:
        raise HTTPError(400, "invalid_request", "bad Content-Length", close=True) from None
    if length < 0:
        raise HTTPError(400, "invalid_request", "bad Content-Length", close=True)
    if length > limit:
        if length <= DRAIN_BYTES:  # read it away so that the client gets to see the answer
            _discard(rfile, length)
        raise HTTPError(413, "payload_too_large", _too_large(length, limit), close=True)
    raw = rfile.read(length) if length else b""
    if len(raw) < length:
        raise HTTPError(400, "invalid_request", "body shorter than Content-Length", close=True)
    encoding = (headers.get("Content-Encoding") or "identity").strip().lower()
    if encoding == "gzip":
        return inflate(raw, limit)
    if encoding != "identity":
        raise HTTPError(415, "unsupported_encoding", f"Content-Encoding {encoding!r}")
    return raw


def inflate(data: bytes, limit: int = MAX_BODY_BYTES) -> bytes:
    """Gunzip ``data``, stopping with 413 as soon as the output would pass ``limit`` bytes."""
    inflater = zlib.decompressobj(31)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as e:
        raise HTTPError(400, "invalid_gzip", f"body is not valid gzip: {e}") from None
    if len(out) > limit:
        raise HTTPError(413, "payload_too_large", f"inflated body is over {limit} bytes")
    if not inflater.eof:
        raise HTTPError(400, "invalid_gzip", "gzip body is truncated")
    if inflater.unused_data:
        raise HTTPError(400, "invalid_gzip", "data after the end of the gzip stream")
    return out


def encoded(value: Any, where: str) -> bytes:
    """``value`` as stored JSON, or a 400 naming ``where`` when it cannot be stored (nested
    deeper than orjson's 254 levels, an integer beyond 64 bits)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError as e:
        raise HTTPError(400, "invalid_request", f"{where} cannot be stored: {e}") from None


def _discard(rfile: Readable, length: int) -> None:
    while length > 0:
        chunk = rfile.read(min(length, 1 << 16))
        if not chunk:
            return
        length -= len(chunk)


def _too_large(length: int, limit: int) -> str:
    return f"body of {length} bytes is over the {limit}-byte limit"
