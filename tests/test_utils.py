from __future__ import annotations

import logging
import re
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum

import pytest
from dateutil.tz import tzlocal, tzutc

from segment_clone import utils
from segment_clone.utils import (
    clean,
    guess_timezone,
    new_message_id,
    remove_trailing_slash,
    require,
    stringify_id,
    utc_now_iso,
)

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class Color(Enum):
    RED = "red"
    DEEP = {"a": Decimal("2.5")}  # noqa: RUF012


def test_clean_converts_types() -> None:
    assert clean(Decimal("1.5")) == 1.5
    assert isinstance(clean(Decimal("1.5")), float)
    assert sorted(clean({1, 2})) == [1, 2]
    assert clean(("a",)) == ["a"]
    assert clean(Color.RED) == "red"
    assert clean(Color.DEEP) == {"a": 2.5}
    assert clean(b"abc") == "abc"
    assert clean(bytearray(b"xy")) == "xy"
    now = datetime.now()
    assert clean({"d": now, "n": None, "b": True, "day": date(2020, 1, 2)}) == {
        "d": now,
        "n": None,
        "b": True,
        "day": date(2020, 1, 2),
    }


def test_clean_returns_a_deep_copy() -> None:
    original = {"a": {"b": [1, 2]}}
    cleaned = clean(original)
    cleaned["a"]["b"].append(3)
    assert original == {"a": {"b": [1, 2]}}


def test_clean_drops_unserializable_values_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="segment"):
        assert clean({"ok": 1, "fn": lambda: None}) == {"ok": 1}
    assert any("fn" in r.getMessage() for r in caplog.records)
    # a list holding one bad element loses its whole key, as upstream does
    assert clean({"k": [1, object()]}) == {}


def test_clean_invalid_utf8_raises() -> None:
    with pytest.raises(UnicodeDecodeError):
        clean(b"\xff")


def test_clean_top_level_unknown_type_raises_type_error() -> None:
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        clean(object())


def test_guess_timezone() -> None:
    old = datetime(2014, 9, 3)
    assert guess_timezone(old).tzinfo == tzutc()
    recent = datetime.now()
    assert guess_timezone(recent).tzinfo == tzlocal()
    assert guess_timezone(recent).replace(tzinfo=None) == recent
    future = datetime.now() + timedelta(days=1)
    assert guess_timezone(future).tzinfo == tzlocal()
    aware = datetime(2014, 9, 3, tzinfo=timezone(timedelta(hours=2)))
    assert guess_timezone(aware) is aware


def test_stringify_id() -> None:
    assert stringify_id(None) is None
    assert stringify_id("a") == "a"
    assert stringify_id(157963456373623802) == "157963456373623802"
    u = uuid.uuid4()
    assert stringify_id(u) == str(u)


def test_require_names_argument_and_type() -> None:
    require("x", "s", str)
    with pytest.raises(AssertionError, match=r"^event must have str, got: None \(NoneType\)$"):
        require("event", None, str)
    with pytest.raises(AssertionError, match=r"int or str, got: \[1\] \(list\)"):
        require("user_id", [1], (int, str))


def test_remove_trailing_slash() -> None:
    assert remove_trailing_slash("http://h:1/") == "http://h:1"
    assert remove_trailing_slash("http://h:1") == "http://h:1"


def test_new_message_id_is_a_unique_uuid4() -> None:
    ids = {new_message_id() for _ in range(5000)}
    assert len(ids) == 5000
    for value in list(ids)[:200]:
        assert UUID4.match(value)
        assert uuid.UUID(value).version == 4


def test_utc_now_iso_matches_datetime_isoformat() -> None:
    before = datetime.now(timezone.utc)
    value = utc_now_iso()
    after = datetime.now(timezone.utc)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$", value)
    parsed = datetime.fromisoformat(value)
    assert before - timedelta(milliseconds=1) <= parsed <= after


def test_utc_now_iso_at_second_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    for now in (1700000000.0, 1700000000.9999, 1700000001.0005, 1700000001.5):
        monkeypatch.setattr(utils.time, "time", lambda now=now: now)
        expected = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds")
        assert utc_now_iso() == expected
