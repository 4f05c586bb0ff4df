"""Small pure helpers shared by the client and the consumers.

``clean``, ``guess_timezone``, ``require`` and ``stringify_id`` keep the names and semantics of
``segment.analytics`` so that code importing them keeps working after migration.
"""

from __future__ import annotations

import logging
import numbers
import os
import random
import time
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any

from dateutil.tz import tzlocal, tzutc

log = logging.getLogger("segment")

ID_TYPES = (numbers.Number, str)
"""What ``userId``, ``anonymousId``, ``previousId`` and ``groupId`` may be before stringifying."""


def is_naive(dt: datetime) -> bool:
    """True when ``dt`` carries no usable timezone."""
    return dt.tzinfo is None or dt.tzinfo.utcoffset(dt) is None


def total_seconds(delta: timedelta) -> float:
    """Seconds in ``delta`` as a float (kept for compatibility with older callers)."""
    return delta.total_seconds()


def guess_timezone(dt: datetime) -> datetime:
    """Attach a zone to a naive datetime without shifting its wall-clock value.

    A value less than five seconds old (or in the future) is assumed to be local time, as if it
    came from ``datetime.now()``; anything older is assumed to be UTC, as stored timestamps
    usually are.
    """
    if not is_naive(dt):
        return dt
    if (datetime.now() - dt).total_seconds() < 5:
        return dt.replace(tzinfo=tzlocal())
    return dt.replace(tzinfo=tzutc())


def remove_trailing_slash(host: str) -> str:
    """``"http://h/"`` becomes ``"http://h"`` so that paths can be appended."""
    return host[:-1] if host.endswith("/") else host


def require(name: str, field: Any, data_type: type | tuple[type, ...]) -> None:
    """Raise AssertionError naming the argument, the expected type and what was given."""
    if not isinstance(field, data_type):
        raise AssertionError(
            f"{name} must have {_type_names(data_type)}, got: {field!r} ({type(field).__name__})"
        )


def _type_names(data_type: type | tuple[type, ...]) -> str:
    if isinstance(data_type, tuple):
        return " or ".join(t.__name__ for t in data_type)
    return data_type.__name__


def stringify_id(val: Any) -> str | None:
    """None stays None, str stays str, anything else (int, UUID, ...) becomes ``str(val)``."""
    if val is None or type(val) is str:
        return val
    return str(val)


_ids = random.Random()
_UUID4_CLEAR = 0xFFFFFFFFFFFF0FFF3FFFFFFFFFFFFFFF  # version nibble and variant bits
_UUID4_SET = 0x00000000000040008000000000000000  # version 4, RFC 4122 variant


def new_message_id() -> str:
    """A random UUID4 string, at a third of the cost of ``str(uuid.uuid4())``.

    The generator is seeded from ``os.urandom`` and reseeded in every forked child (see
    ``reseed_message_ids``), so parent and children never draw the same ids.
    """
    h = new_hex_id()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def new_hex_id() -> str:
    """A random UUID4 as 32 hex digits (``uuid.uuid4().hex``), from the same generator."""
    return (_ids.getrandbits(128) & _UUID4_CLEAR | _UUID4_SET).to_bytes(16, "big").hex()


def reseed_message_ids() -> None:
    """Draw fresh entropy: called after a fork, including forks that bypass Python's hooks."""
    _ids.seed(os.urandom(32))


os.register_at_fork(after_in_child=reseed_message_ids)

_utc_millisecond: tuple[int, str] = (0, "")


def utc_now_iso() -> str:
    """``datetime.now(timezone.utc).isoformat(timespec="milliseconds")``, about ten times
    faster: the string is formatted once per millisecond and reused by every call within it."""
    global _utc_millisecond
    millisecond = int(time.time() * 1000)
    cached, text = _utc_millisecond
    if millisecond != cached:
        second, fraction = divmod(millisecond, 1000)
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        text = f"{prefix}.{fraction:03d}+00:00"
        _utc_millisecond = (millisecond, text)
    return text


def clean(item: Any) -> Any:
    """Return a JSON-ready deep copy of ``item``, dropping dict values that cannot be encoded.

    Decimal becomes float, sets and tuples become lists, Enum members become their value and
    bytes are decoded as UTF-8 (invalid UTF-8 raises UnicodeDecodeError). A dict value that
    cannot be cleaned is dropped with a WARNING; inside a list, the error propagates to the
    enclosing dict key, which is dropped whole, as in ``segment.analytics``.
    """
    if isinstance(item, Decimal):
        return float(item)
    if isinstance(item, (str, bool, numbers.Number, datetime, date, type(None))):
        return item
    if isinstance(item, (set, list, tuple)):
        return [clean(x) for x in item]
    if isinstance(item, dict):
        return _clean_dict(item)
    if isinstance(item, Enum):
        return clean(item.value)
    return _decode(item)


def _clean_dict(item: dict[Any, Any]) -> dict[Any, Any]:
    data = {}
    for k, v in item.items():
        try:
            data[k] = clean(v)
        except TypeError:
            log.warning(
                'Dictionary values must be serializeable to JSON "%s" value %r of type %s is '
                "unsupported.",
                k,
                v,
                type(v).__name__,
            )
    return data


def _decode(item: Any) -> str:
    decode = getattr(item, "decode", None)
    if decode is None:
        raise TypeError(f"{type(item).__name__} is not JSON serializable")
    result = decode("utf-8", "strict")
    if not isinstance(result, str):
        raise TypeError(f"{type(item).__name__}.decode() did not return str")
    return result
