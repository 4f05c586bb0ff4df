"""The upstream JSON conventions: compact output, datetimes without offset or microseconds.

``encode`` writes them with orjson when the serializer is ``DatetimeSerializer`` itself;
anything orjson refuses (a ``Decimal``, a ``set``, an int beyond 64 bits, a non-string key) and
every other serializer (a subclass) go through ``json_dumps``, so a subclass's ``default`` is
honoured and upstream's ``TypeError`` is raised where upstream raises it. Three departures
remain on the orjson path: NaN and the infinities are written as ``null`` (upstream writes
``NaN``, which is not JSON and which Mixpanel refuses), a ``uuid.UUID`` as its string and an
``enum.Enum`` as its value (upstream raises ``TypeError`` for both).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import orjson

from ..wire import ascii_json

_PASSTHROUGH = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
"""Datetimes, dates, times and dataclasses reach ``_upstream_default`` instead of orjson's own
formats, so they come out as upstream writes them, or are refused as upstream refuses them."""


class DatetimeSerializer(json.JSONEncoder):
    """Writes ``datetime`` as ``YYYY-MM-DDTHH:MM:SS``, as upstream does (no tz conversion).

    Subclass it and pass the subclass as ``serializer=`` to support more types.
    """

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return o.strftime("%Y-%m-%dT%H:%M:%S")
        return super().default(o)


def json_dumps(data: Any, cls: type[json.JSONEncoder] | None = None) -> str:
    """Compact JSON (no whitespace), otherwise the stdlib defaults upstream relies on."""
    return json.dumps(data, separators=(",", ":"), cls=cls)


def encode(data: Any, serializer: type[json.JSONEncoder]) -> bytes:
    """``json_dumps(data, serializer)`` as ASCII bytes, by orjson where that gives the same
    value (about a fifth of the cost): non-ASCII characters are ``\\u``-escaped as
    ``json.dumps`` escapes them. ASCII output is copied to its exact size, as the Segment face
    does (``encoding.encode_message``): orjson's bytes keep a 4 KiB allocation, which a queue
    of 10,000 messages turns into 40 MiB of fresh pages to fault in."""
    if serializer is DatetimeSerializer:
        try:
            encoded = orjson.dumps(data, default=_upstream_default, option=_PASSTHROUGH)
            return bytes(memoryview(encoded)) if encoded.isascii() else ascii_json(encoded)
        except TypeError:  # orjson.JSONEncodeError: let json.dumps decide, as upstream
            pass
    return json_dumps(data, serializer).encode()


_Fragment = orjson.Fragment
_orjson_dumps = orjson.dumps


def _upstream_default(value: Any) -> Any:
    """``DatetimeSerializer.default``'s text for a datetime, from year 1000 on (``strftime``'s
    ``%Y`` does not pad); anything else is refused. A plain ``datetime`` is cut from orjson's
    own text, whose first 19 characters are the same (``isoformat`` cost about three times as
    much, and ``strftime`` about five); a subclass, which orjson does not write, goes through
    ``isoformat``."""
    if type(value) is datetime and value.year >= 1000:
        return _Fragment(_orjson_dumps(value)[:20] + b'"')
    if isinstance(value, datetime) and value.year >= 1000:
        return value.isoformat(timespec="seconds")[:19]
    raise TypeError


__all__ = ["DatetimeSerializer", "encode", "json_dumps"]
