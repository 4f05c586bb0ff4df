"""Mixpanel's JSON-logic operators for runtime rules: ``semver_compare`` and ``datetime_compare``.

Both take ``[actual, symbol, target]`` with a symbol of ``===``, ``!==``, ``<``, ``<=``, ``>``,
``>=``, and answer ``False`` for anything malformed rather than raising: a rule over a property
that a context sets badly simply does not match. Importing this module registers them in
``json_logic.operations``.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Any, Callable

from . import json_logic

_ARITY = 3
_SEMVER_MAX_LENGTH = 256
"""Longer operands are refused before any regex sees them (node-semver's ``MAX_LENGTH``)."""
_INT64_LIMIT = 2**63
"""Targets are epoch milliseconds as int64 in the other SDKs; beyond that is not a time."""
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

_IDENTIFIER = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    rf"(?:-({_IDENTIFIER}(?:\.{_IDENTIFIER})*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
"""SemVer 2.0.0's own pattern: no leading zeros, dot-separated pre-release and build fields."""

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)

_HOLDS: dict[str, Callable[[int], bool]] = {
    "===": lambda order: order == 0,
    "!==": lambda order: order != 0,
    "<": lambda order: order < 0,
    "<=": lambda order: order <= 0,
    ">": lambda order: order > 0,
    ">=": lambda order: order >= 0,
}


def _holds(order: int, symbol: str) -> bool:
    test = _HOLDS.get(symbol)
    return test is not None and test(order)


def _sign(a: Any, b: Any) -> int:
    return int(a > b) - int(a < b)


def semver_compare(*values: Any) -> bool:
    """``actual symbol target`` for two SemVer 2.0.0 versions, after a leading ``v`` is dropped
    and a short core is padded (``1.2`` is ``1.2.0``)."""
    if len(values) != _ARITY:
        return False
    actual, symbol, target = values
    if not (isinstance(symbol, str) and isinstance(actual, str) and isinstance(target, str)):
        return False
    if max(len(actual), len(target)) > _SEMVER_MAX_LENGTH:
        return False
    left, right = _padded(actual), _padded(target)
    if not (_SEMVER.match(left) and _SEMVER.match(right)):
        return False
    return _holds(_semver_order(left, right), symbol)


def _padded(version: str) -> str:
    version = version.strip()
    if version[:1] in ("v", "V"):
        version = version[1:]
    cut = min((i for i in (version.find("-"), version.find("+")) if i != -1), default=len(version))
    core = version[:cut].split(".")
    core += ["0"] * (3 - len(core))
    return ".".join(core) + version[cut:]


def _numeric_order(a: str, b: str) -> int:
    """Digit strings without leading zeros: the longer is larger, so no integer overflows."""
    return _sign(len(a), len(b)) or _sign(a, b)


def _is_number(identifier: str) -> bool:
    return bool(identifier) and all("0" <= char <= "9" for char in identifier)


def _identifier_order(a: str, b: str) -> int:
    """SemVer 11.4: numbers numerically, numbers below words, words by ASCII."""
    a_number, b_number = _is_number(a), _is_number(b)
    if a_number and b_number:
        return _numeric_order(a, b)
    if a_number != b_number:
        return -1 if a_number else 1
    return _sign(a, b)


def _parts(version: str) -> tuple[list[str], list[str]]:
    """Core and pre-release identifiers of a version that matched ``_SEMVER``; build dropped."""
    version = version.split("+", 1)[0]
    core, _, prerelease = version.partition("-")
    return core.split("."), prerelease.split(".") if prerelease else []


def _semver_order(a: str, b: str) -> int:
    a_core, a_pre = _parts(a)
    b_core, b_pre = _parts(b)
    for x, y in zip(a_core, b_core):
        order = _numeric_order(x, y)
        if order:
            return order
    if not a_pre or not b_pre:
        # A pre-release ranks below its release (SemVer 11.3).
        return _sign(not a_pre, not b_pre)
    for x, y in zip(a_pre, b_pre):
        order = _identifier_order(x, y)
        if order:
            return order
    return _sign(len(a_pre), len(b_pre))


def datetime_compare(*values: Any) -> bool:
    """``actual symbol target`` in whole seconds: ``actual`` an RFC 3339 string, ``target``
    epoch milliseconds (as the flag definition stores it)."""
    if len(values) != _ARITY:
        return False
    actual, symbol, target = values
    if not isinstance(symbol, str):
        return False
    actual_seconds = _rfc3339_seconds(actual)
    target_seconds = _epoch_ms_seconds(target)
    if actual_seconds is None or target_seconds is None:
        return False
    return _holds(actual_seconds - target_seconds, symbol)


def _rfc3339_seconds(value: Any) -> int | None:
    """Whole epoch seconds (the fraction dropped), or ``None`` for anything not a real instant:
    the pattern checks shape only, so fields are range-checked here (no 30 February, no 24:00,
    no year 0)."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.match(value.strip().upper())
    if match is None:
        return None
    offset = match.group(7)
    offset_seconds = 0
    if offset != "Z":
        hours, minutes = int(offset[1:3]), int(offset[4:6])
        if hours > 23 or minutes > 59:
            return None
        offset_seconds = (hours * 3600 + minutes * 60) * (-1 if offset[0] == "-" else 1)
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    try:
        moment = datetime.datetime(
            year, month, day, hour, minute, second, tzinfo=datetime.timezone.utc
        )
    except ValueError:
        return None
    return int((moment - _EPOCH).total_seconds()) - offset_seconds


def _epoch_ms_seconds(value: Any) -> int | None:
    """Epoch milliseconds to whole seconds, truncated toward zero; ``None`` unless a finite
    int or float within int64 (``bool`` is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    milliseconds = int(value)
    if abs(milliseconds) >= _INT64_LIMIT:
        return None
    seconds = abs(milliseconds) // 1000
    return -seconds if milliseconds < 0 else seconds


json_logic.operations["semver_compare"] = semver_compare
json_logic.operations["datetime_compare"] = datetime_compare
