"""The size limits, measured on the bytes that go on the wire.

Segment refuses a message over 32 KB and a request over 500 KB, and a refused request loses its
whole batch. So every limit is measured on what is sent: the compact JSON with every non-ASCII
character ``\\u``-escaped, as ``json.dumps`` writes it and as ``request._session.post`` receives
it. A message is escaped once, when it is encoded, so its length is its size on the wire and the
queue, the spool, the gzip look-ahead and ``sync_mode`` all count the same bytes.

Batches are cut by analytics-python's rule (messages are taken until their total reaches
``BATCH_SIZE_LIMIT``, the one that reaches it included) and, unlike upstream, never past
``MAX_BATCH_BYTES`` of JSON array: upstream's rule alone lets a batch reach 475 KB plus one 32 KB
message.
"""

from __future__ import annotations

import codecs
from json.encoder import encode_basestring_ascii
from typing import Callable

MAX_MSG_SIZE = 32 << 10
"""Bytes of JSON per message as sent, the tracking API's limit."""
BATCH_SIZE_LIMIT = 475000
"""analytics-python's batch cut: a batch closes with the message that brings it to this."""
MAX_BATCH_BYTES = 499_000
"""Bytes of the ``batch`` array (brackets and commas included) that no batch exceeds: 1,000
bytes under the API's 500 KB leave room for ``sentAt``, ``writeKey`` and the envelope."""

BatchCut = Callable[[list[int], int], int]
"""How many of the leading messages (their sizes) make a batch under a byte limit."""

_ESCAPE = "segment_clone.json_escape"


def _json_escape(error: UnicodeError) -> tuple[str, int]:
    """The ``\\u`` escapes of a run of non-ASCII characters (surrogate pairs beyond U+FFFF)."""
    assert isinstance(error, UnicodeEncodeError)
    run = error.object[error.start : error.end]
    return encode_basestring_ascii(run)[1:-1], error.end


codecs.register_error(_ESCAPE, _json_escape)


def ascii_json(data: bytes) -> bytes:
    """``data`` (UTF-8 JSON) with its non-ASCII characters escaped; ASCII is returned as is.

    Non-ASCII characters only occur inside JSON strings, so escaping them changes the text,
    not the value."""
    if data.isascii():
        return data
    return data.decode("utf-8").encode("ascii", _ESCAPE)


def batch_cut(sizes: list[int], soft_limit: int) -> int:
    """How many of the leading messages of ``sizes`` (bytes each) make the next batch.

    Upstream's rule: up to and including the message whose size brings the total to
    ``soft_limit``; and never past ``MAX_BATCH_BYTES`` of array. At least one message: a
    message within ``MAX_MSG_SIZE`` always fits."""
    total = sum(sizes)
    if total < soft_limit and total + len(sizes) + 1 <= MAX_BATCH_BYTES:
        return len(sizes)  # the usual case: small messages
    array = 1  # the opening bracket; each message adds itself and a comma or the closing one
    total = 0
    for count, size in enumerate(sizes):
        if count and array + size + 1 > MAX_BATCH_BYTES:
            return count
        array += size + 1
        total += size
        if total >= soft_limit:
            return count + 1
    return len(sizes)


def fit_under(sizes: list[int], limit: int) -> int:
    """How many of the leading messages fit within ``limit`` bytes together; at least one."""
    if sum(sizes) <= limit:
        return len(sizes)
    total = 0
    for count, size in enumerate(sizes):
        total += size
        if count and total > limit:
            return count
    return len(sizes)


__all__ = [
    "BATCH_SIZE_LIMIT",
    "MAX_BATCH_BYTES",
    "MAX_MSG_SIZE",
    "BatchCut",
    "ascii_json",
    "batch_cut",
    "fit_under",
]
