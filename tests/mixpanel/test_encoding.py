"""Encoding once, cheaply: orjson writes what ``json_dumps`` with ``DatetimeSerializer`` would,
a serializer subclass is honoured, our background consumer gets the bytes and any other
consumer a JSON ``str``, over a real loopback server."""

from __future__ import annotations

import json
import math
import tracemalloc
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_clone.mixpanel import (
    AsyncBufferedConsumer,
    Consumer,
    DatetimeSerializer,
    Mixpanel,
    json_dumps,
)
from segment_clone.mixpanel.serialization import encode

from ..server import ScriptedServer
from .conftest import data

MakeAsync = Callable[..., AsyncBufferedConsumer]

leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.datetimes(min_value=datetime(1000, 1, 1), timezones=st.none() | st.timezones())
)
values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(values)
def test_orjson_writes_what_json_dumps_writes(value: Any) -> None:
    encoded = encode(value, DatetimeSerializer)
    assert encoded.isascii()
    assert json.loads(encoded) == json.loads(json_dumps(value, DatetimeSerializer))


def test_common_messages_are_the_same_text() -> None:
    message = {
        "event": "Café",
        "properties": {"n": 3, "x": 1.5, "ok": True, "none": None, "at": datetime(2020, 1, 2)},
        "list": ["😀", {"nested": "ü"}],
    }
    assert encode(message, DatetimeSerializer).decode() == json_dumps(message, DatetimeSerializer)


@pytest.mark.parametrize(
    "value",
    [
        Decimal("1.5"),  # refused by orjson and by json: TypeError, as upstream
        {1: "int key"},  # orjson refuses non-string keys; json writes "1"
        2**70,  # beyond 64 bits
        date(2020, 1, 2),  # DatetimeSerializer knows datetime only: TypeError, as upstream
        datetime(999, 1, 2, 3, 4, 5),  # strftime's %Y writes 999, isoformat 0999
    ],
)
def test_what_orjson_would_write_otherwise_goes_through_json_dumps(value: Any) -> None:
    try:
        expected: bytes | type[BaseException] = json_dumps(value, DatetimeSerializer).encode()
    except TypeError:
        expected = TypeError
    if expected is TypeError:
        with pytest.raises(TypeError, match="not JSON serializable"):
            encode(value, DatetimeSerializer)
    else:
        assert encode(value, DatetimeSerializer) == expected


class Stamp(datetime):
    """A datetime subclass (as freezegun's or pendulum's): orjson does not write these."""


def test_a_datetime_subclass_is_written_as_upstream_writes_it() -> None:
    message = {"at": Stamp(2024, 5, 17, 14, 3, 12, 250000, tzinfo=timezone.utc)}
    assert encode(message, DatetimeSerializer) == b'{"at":"2024-05-17T14:03:12"}'


def test_an_encoded_message_holds_its_own_size_only() -> None:
    """orjson's bytes keep a 4 KiB allocation; a queue of them would hold 40 MiB per 10,000."""
    message = {"event": "e", "properties": {"at": datetime(2020, 1, 2), "n": 1}}
    tracemalloc.start()
    try:
        kept = [encode(message, DatetimeSerializer) for _ in range(100)]
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(kept) == 100
    assert held < 100 * 200


def test_departures_of_the_orjson_path() -> None:
    """NaN is not JSON: upstream writes it and Mixpanel refuses the batch; orjson writes null.
    A UUID is written as its text where upstream raises ``TypeError``."""
    some_id = uuid.UUID(int=7)
    encoded = json.loads(encode({"nan": math.nan, "id": some_id}, DatetimeSerializer))
    assert encoded == {"nan": None, "id": str(some_id)}


class IsoSerializer(DatetimeSerializer):
    """A user's subclass: full ISO datetimes, and sets as sorted lists."""

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()
        if isinstance(o, set):
            return sorted(o)
        return super().default(o)


def test_a_serializer_subclass_is_honoured_on_the_wire(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    consumer = make_async()
    mp = Mixpanel("tok", consumer, serializer=IsoSerializer)
    at = datetime(2024, 5, 17, 14, 3, 12, 250000, tzinfo=timezone(timedelta(hours=2)))
    mp.track("u1", "e", {"at": at, "tags": {"b", "a"}})
    mp.people_set("u1", {"born": at})
    assert consumer.flush(timeout=10) == 0
    by_path = {r.path.partition("?")[0]: data(r)[0] for r in mp_server.requests}
    assert by_path["/track"]["properties"]["at"] == "2024-05-17T14:03:12.250000+02:00"
    assert by_path["/track"]["properties"]["tags"] == ["a", "b"]
    assert by_path["/engage"]["$set"]["born"] == "2024-05-17T14:03:12.250000+02:00"


class Forwarding:
    """A custom consumer: checks it is handed text, then posts it with ``Consumer``."""

    def __init__(self, inner: Consumer) -> None:
        self.inner = inner
        self.types: list[type] = []

    def send(self, endpoint: str, json_message: str, *auth: Any) -> None:
        self.types.append(type(json_message))
        self.inner.send(endpoint, json_message, *auth)


def test_a_custom_consumer_receives_json_text(mp_server: ScriptedServer) -> None:
    custom = Forwarding(Consumer(api_host=mp_server.url, request_timeout=10))
    mp = Mixpanel("tok", custom)
    mp.track("u1", "Café", {"at": datetime(2020, 1, 2, 3, 4, 5)})
    mp.import_data(None, "u1", "Old", 1.6e9, api_secret="S")
    assert custom.types == [str, str]
    track, imported = (data(r) for r in mp_server.requests)
    assert track["event"] == "Café"
    assert track["properties"]["at"] == "2020-01-02T03:04:05"
    assert imported["event"] == "Old"


def test_our_background_consumer_is_handed_the_encoded_bytes(
    mp_server: ScriptedServer, make_async: MakeAsync, monkeypatch: pytest.MonkeyPatch
) -> None:
    consumer = make_async()
    handed: list[Any] = []
    send = consumer.send

    def spy(endpoint: str, json_message: Any, *args: Any) -> None:
        handed.append(json_message)
        send(endpoint, json_message, *args)

    monkeypatch.setattr(consumer, "send", spy)
    Mixpanel("tok", consumer).track("u1", "é")
    assert consumer.flush(timeout=10) == 0
    assert [type(m) for m in handed] == [bytes]
    assert b'"event":"\\u00e9"' in handed[0]
    assert data(mp_server.requests[0])[0]["event"] == "é"
