"""Serialize each message exactly once, to compact ASCII JSON bytes, and never raise doing it.

The bytes produced at ``track()`` time are what the consumer later splices into the batch body,
so a message is never re-encoded for size checks or for the request, and later mutation of the
caller's dicts cannot change what is sent.

The bytes are the message as it goes on the wire: non-ASCII characters are ``\\u``-escaped
(``wire.ascii_json``), so their length is what every size limit measures.

The fast path is one ``orjson.dumps``. Only when orjson refuses the message does it go through
``sanitize``, which sends what analytics-python sends (integers of any size, non-string keys
stringified as ``json.dumps`` does, lone surrogates escaped) and drops, with one WARNING per
message, what analytics-python could not send either: reference cycles, nesting deeper than
``MAX_DEPTH``, keys that are neither strings nor numbers, bytes that are not UTF-8 and objects
of unknown types. The rest of the message is sent.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import numbers
from datetime import date, datetime, time, timezone
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import orjson

from .wire import ascii_json

log = logging.getLogger("segment")

MAX_DEPTH = 254
"""Levels of dicts and lists a message may have, counting the message itself: orjson's own
limit, so the fast path and the fallback agree on what is sent."""

Message = dict[str, Any]


_AS_DATETIME = orjson.OPT_PASSTHROUGH_DATETIME
"""Datetimes (and dates and times) come to ``_default``, which checks a datetime's offset
before orjson writes it."""


_UTC = timezone.utc
_Fragment = orjson.Fragment
_orjson_dumps = orjson.dumps


def _default(obj: Any) -> Any:
    """The types orjson leaves to us. A datetime gets orjson's text, unless its UTC offset has
    seconds: orjson rounds those to the minute (``+00:20`` for Amsterdam's ``+00:19:32``
    before 1937), which moves the time, so such a value is written by ``isoformat``, as
    upstream writes it. Inline, since every datetime of every message comes here."""
    if isinstance(obj, datetime):
        tz = obj.tzinfo
        if tz is not None and tz is not _UTC:
            offset = obj.utcoffset()
            if offset is not None and (offset.seconds % 60 or offset.microseconds):
                return obj.isoformat()
        return _Fragment(_orjson_dumps(obj))
    if isinstance(obj, (date, time)):
        return _Fragment(_orjson_dumps(obj))
    if isinstance(obj, Decimal):
        return float(obj)
    if isinstance(obj, (set, frozenset)):
        return list(obj)
    if isinstance(obj, (bytes, bytearray)):
        return obj.decode("utf-8", "strict")
    if isinstance(obj, numbers.Integral):  # numpy and other registered integer types
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> bytes:
    """Compact JSON for one value, with the extended types of ``_default``."""
    return orjson.dumps(obj, default=_default, option=_AS_DATETIME)


def encode_message(msg: Message) -> tuple[bytes, Message]:
    """Return ``(json_bytes, msg)``; ``msg`` is replaced by its sanitized copy only when needed.

    The bytes are ASCII, as sent. ASCII output is copied once to its exact size: orjson hands
    back a buffer that keeps its 4 KiB allocation, which for a queue of 10,000 small messages
    is ~35 MiB of slack (escaping makes a new buffer anyway).
    """
    try:
        data = orjson.dumps(msg, default=_default, option=_AS_DATETIME)
        if data.isascii():
            return bytes(memoryview(data)), msg
        return ascii_json(data), msg
    except TypeError:  # orjson.JSONEncodeError subclasses TypeError
        clean, dropped = sanitize(msg)
        if dropped:
            log.warning(
                "dropped %d value(s) that cannot be sent as JSON: %s",
                len(dropped),
                "; ".join(dropped),
            )
        return _dumps_sanitized(clean), clean


def decode_message(data: bytes) -> Message:
    """A message dict from its encoded bytes, exactly (orjson would turn big ints into floats)."""
    message: Message = json.loads(data)
    return message


def _dumps_sanitized(value: Any) -> bytes:
    """JSON for a ``sanitize``d value: the standard library writes integers of any size, and
    escapes every non-ASCII character, a lone surrogate (which UTF-8 cannot hold) included.
    """
    text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    return text.encode("ascii")


def sanitize(value: Any) -> tuple[Any, list[str]]:
    """A JSON-ready copy of ``value`` and the paths of what was dropped, each with the reason.

    The copy holds only dicts with string keys, lists, strings, ints, floats and None, so
    ``json.dumps`` can always write it. Values are converted as the fast path converts them
    (Decimal and other real numbers to float, NaN and infinity to None, sets and tuples to
    lists, datetimes to ISO 8601, UUIDs to strings, Enum members to their value, dataclasses to
    dicts, UTF-8 bytes to text).
    """
    dropped: list[str] = []
    clean = _Sanitizer(dropped).value(value, "", 1)
    return (None if clean is _DROP else clean), dropped


_DROP = object()
_KEY_LITERALS = {True: "true", False: "false", None: "null"}


class _Sanitizer:
    def __init__(self, dropped: list[str]) -> None:
        self.dropped = dropped
        self._open: set[int] = set()

    def value(self, v: Any, path: str, depth: int) -> Any:
        try:
            if isinstance(v, (str, bool)) or v is None:
                return v
            if isinstance(v, numbers.Integral):
                return int(v)
            if isinstance(v, (numbers.Real, Decimal)):
                f = float(v)
                return f if math.isfinite(f) else None
            if isinstance(v, (datetime, date, time)):
                return v.isoformat()
            if isinstance(v, UUID):
                return str(v)
            if isinstance(v, Enum):
                return self.value(v.value, path, depth)
            if isinstance(v, (bytes, bytearray)):
                return v.decode("utf-8", "strict")
            if isinstance(v, (dict, list, tuple, set, frozenset)) or _is_dataclass(v):
                return self.container(v, path, depth)
        except UnicodeDecodeError:
            return self.drop(path, "bytes that are not UTF-8")
        except Exception as e:  # a hostile __float__, __iter__, property ...: drop the value
            return self.drop(path, f"{type(v).__name__} could not be converted ({e!r})")
        return self.drop(path, f"unsupported type {type(v).__name__}")

    def container(self, v: Any, path: str, depth: int) -> Any:
        """A dict or list, copied. Two stack frames per level (this and ``value``) keep
        ``MAX_DEPTH`` levels well inside Python's recursion limit."""
        if depth > MAX_DEPTH:
            return self.drop(path, f"nested deeper than {MAX_DEPTH} levels")
        if id(v) in self._open:
            return self.drop(path, "a reference cycle")
        self._open.add(id(v))
        try:
            if not (isinstance(v, dict) or _is_dataclass(v)):
                out_list = []
                for i, x in enumerate(v):
                    clean = self.value(x, f"{path}[{i}]", depth + 1)
                    if clean is not _DROP:
                        out_list.append(clean)
                return out_list
            out: dict[str, Any] = {}
            for k, x in v.items() if isinstance(v, dict) else _fields(v):
                key = _json_key(k)
                if key is None:
                    self.drop(f"{path}[{k!r}]", f"a key of type {type(k).__name__}")
                    continue
                child = f"{path}.{key}" if path else key
                clean = self.value(x, child, depth + 1)
                if clean is not _DROP:
                    out[key] = clean
            return out
        finally:
            self._open.discard(id(v))

    def drop(self, path: str, reason: str) -> object:
        if len(path) > 100:  # a deep path: its two ends say where it is
            path = f"{path[:60]}...{path[-30:]}"
        self.dropped.append(f"{path or '(the message)'}: {reason}")
        return _DROP


def _json_key(k: Any) -> str | None:
    """A dict key as ``json.dumps`` writes it, or None for keys it refuses."""
    if isinstance(k, str):
        return str(k)
    if isinstance(k, bool) or k is None:
        return _KEY_LITERALS[k]
    if isinstance(k, int):
        return int.__repr__(k)
    if isinstance(k, float):
        return json.dumps(k)
    return None


def _is_dataclass(v: Any) -> bool:
    return dataclasses.is_dataclass(v) and not isinstance(v, type)


def _fields(v: Any) -> list[tuple[str, Any]]:
    return [(f.name, getattr(v, f.name)) for f in dataclasses.fields(v)]
