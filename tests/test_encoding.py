"""The one-pass orjson encoding means the same JSON as the compatible clean() + json path."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from enum import Enum

import orjson
import pytest
from dateutil.zoneinfo import get_zonefile_instance

from segment_clone.encoding import dumps, encode_message
from segment_clone.request import DatetimeSerializer
from segment_clone.utils import clean


class Plan(Enum):
    PRO = "pro"


CORPUS = [
    {"s": "text", "i": 3, "f": 2.5, "b": False, "n": None},
    {"nested": {"list": [1, "two", {"three": 3.0}], "empty": {}}},
    {"dt": datetime(2012, 3, 4, 5, 6, 7, 891011), "day": date(2020, 1, 2)},
    {"aware": datetime(2020, 1, 1, 12, tzinfo=timezone.utc)},
    {"dec": Decimal("1.25"), "set": {7}, "tuple": (1, 2), "enum": Plan.PRO},
    {"bytes": b"abc", "unicode": "caf\u00e9 \u2603 \U0001f600"},
    {"big": 2**62, "neg": -17, "pi": 3.141592653589793, "cents": 19.99},
]


def reference_bytes(value: object) -> bytes:
    """What the slower, compatible path produces: ``clean()`` then the standard library."""
    return json.dumps(clean(value), cls=DatetimeSerializer, separators=(",", ":")).encode()


@pytest.mark.parametrize("properties", CORPUS)
def test_fast_path_is_byte_for_byte_the_compatible_path(properties: dict[str, object]) -> None:
    msg = {"type": "track", "properties": properties}
    data, returned = encode_message(msg)
    assert data == reference_bytes(msg)
    assert returned is msg  # no copy was needed


def test_batch_body_is_byte_for_byte_the_compatible_path() -> None:
    messages = [{"type": "track", "properties": p} for p in CORPUS]
    encoded = [encode_message(m)[0] for m in messages]
    body = {"batch": encoded, "sentAt": "2026-01-01T00:00:00+00:00"}
    spliced = dumps({"batch": [orjson.Fragment(m) for m in encoded], "sentAt": body["sentAt"]})
    assert spliced == reference_bytes({"batch": messages, "sentAt": body["sentAt"]})


def test_exponents_differ_only_in_spelling() -> None:
    # The one textual difference from the standard library: a float printed with an
    # exponent may be spelled differently ("1e-7" for "1e-07", "1e22" for "1e+22", by orjson
    # version). It is the same JSON number.
    value = {"tiny": 1e-7, "huge": 1e22}
    data, _ = encode_message(value)
    assert json.loads(data) == json.loads(reference_bytes(value)) == value


def test_output_is_compact_escaped_ascii() -> None:
    data, _ = encode_message({"a": [1, 2], "b": "\u00e9\U0001f600"})
    assert data == b'{"a":[1,2],"b":"\\u00e9\\ud83d\\ude00"}'


def test_unencodable_values_fall_back_to_clean(caplog: pytest.LogCaptureFixture) -> None:
    props = {"ok": 1, "bad": object(), "fn": print}
    msg = {"type": "track", "properties": props}
    with caplog.at_level(logging.WARNING, logger="segment"):
        data, returned = encode_message(msg)
    assert json.loads(data) == {"type": "track", "properties": {"ok": 1}}
    assert returned["properties"] == {"ok": 1}
    assert props == {"ok": 1, "bad": props["bad"], "fn": print}  # caller's dict untouched
    assert "bad" in caplog.text


def test_non_string_keys_are_stringified() -> None:
    data, _ = encode_message({"p": {1: "a", None: "b"}})
    assert json.loads(data) == {"p": {"1": "a", "null": "b"}}


def test_nan_becomes_null_not_invalid_json() -> None:
    data, _ = encode_message({"x": float("nan"), "y": float("inf")})
    assert json.loads(data) == {"x": None, "y": None}


def test_uuid_values_are_strings() -> None:
    u = uuid.uuid4()
    data, _ = encode_message({"u": u})
    assert json.loads(data) == {"u": str(u)}


ODD_OFFSETS = [
    timezone(timedelta(seconds=3661)),  # +01:01:01
    timezone(-timedelta(seconds=2670)),  # -00:44:30, Monrovia until 1972
    timezone(timedelta(hours=1, microseconds=5)),
]


@pytest.mark.parametrize("tz", ODD_OFFSETS, ids=str)
def test_offsets_with_seconds_are_written_as_upstream_writes_them(tz: timezone) -> None:
    value = datetime(1900, 1, 1, 12, 30, 15, 250000, tzinfo=tz)
    data, _ = encode_message({"at": value, "nested": [{"at": value}]})
    assert data == reference_bytes({"at": value, "nested": [{"at": value}]})
    assert json.loads(data)["at"] == value.isoformat()


def test_historic_zone_offsets_keep_their_seconds() -> None:
    # Amsterdam's local mean time until 1937 (dateutil's bundled zones: no system tzdata)
    then = datetime(1900, 1, 1, 12, tzinfo=get_zonefile_instance().get("Europe/Amsterdam"))
    data, _ = encode_message({"then": then})
    assert json.loads(data)["then"] == then.isoformat()
    assert then.isoformat().count(":") == 4  # the offset has seconds


@pytest.mark.parametrize(
    "value",
    [
        datetime(2024, 5, 17, 14, 3, 12, 250000, tzinfo=timezone.utc),
        datetime(2024, 5, 17, 14, 3, 12, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
        datetime(2024, 5, 17, 14, 3, 12, tzinfo=get_zonefile_instance().get("Europe/Paris")),
        datetime(2024, 5, 17, 14, 3, 12),
        date(2024, 5, 17),
        time(14, 3, 12, 5),
    ],
    ids=repr,
)
def test_other_dates_and_times_keep_orjsons_text(value: object) -> None:
    assert encode_message({"v": value})[0] == b'{"v":' + orjson.dumps(value) + b"}"
