"""Property values that must never make an analytics call raise.

What analytics-python delivers is delivered as the same JSON; what it could not deliver
(cycles, very deep nesting, tuple keys, bytes that are not UTF-8, unknown objects) is dropped
with one WARNING per message, and the rest of the message is sent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_clone import Client
from segment_clone.compat import DatetimeSerializer
from segment_clone.encoding import MAX_DEPTH, encode_message, sanitize
from segment_clone.utils import clean

from .server import ScriptedServer

MakeClient = Callable[..., Client]


def self_containing() -> dict[str, Any]:
    d: dict[str, Any] = {"name": "loop"}
    d["self"] = d
    return d


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


DELIVERED = {
    "n": 2**70,
    "neg": -(2**80),
    "s": "ab\ud800",
    "pair": "\ud83d\ude00",
    "dec": Decimal("1.5"),
    "naive": datetime(2020, 1, 2, 3, 4, 5, 600000),
    "day": date(2020, 1, 2),
    "keys": {1: "int", 2.5: "float", False: "bool", None: "none"},
}
"""Values analytics-python sends; we send the same JSON."""

DROPPED = {
    "cycle": self_containing(),
    "deep": nested(2000),
    "tuple_key": {(1, 2): "x"},
    "bad_bytes": b"\xff\xfe",
    "thing": object(),
}
"""Values analytics-python cannot send (it raised from the call, or dropped them)."""


def call(client: Client, method: str, values: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """``method`` with ``values`` where that call carries free-form data."""
    if method in ("track",):
        return client.track("u1", "Hostile", values)
    if method in ("page", "screen"):
        return getattr(client, method)("u1", None, "Home", values)  # type: ignore[no-any-return]
    if method == "identify":
        return client.identify("u1", values)
    if method == "group":
        return client.group("u1", "g1", values)
    return client.alias("u0", "u1", context={"extra": values})


def carried(message: dict[str, Any], method: str) -> Any:
    if method in ("track", "page", "screen"):
        return message["properties"]
    if method in ("identify", "group"):
        return message["traits"]
    return message["context"]["extra"]


def upstream_json(value: Any) -> Any:
    """What analytics-python sends for ``value``: ``clean()``, then ``json.dumps``."""
    return json.loads(json.dumps(clean(value), cls=DatetimeSerializer))


METHODS = ["track", "identify", "group", "page", "screen", "alias"]


@pytest.mark.parametrize("method", METHODS)
def test_deliverable_values_are_sent_as_upstream_sends_them(
    server: ScriptedServer, make_client: MakeClient, method: str
) -> None:
    client = make_client()
    ok, _ = call(client, method, DELIVERED)
    assert ok
    assert client.flush(timeout=10) == 0
    [message] = server.messages()
    assert carried(message, method) == upstream_json(DELIVERED)


@pytest.mark.parametrize("method", METHODS)
def test_undeliverable_values_are_dropped_and_the_rest_is_sent(
    server: ScriptedServer,
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    method: str,
) -> None:
    client = make_client()
    with caplog.at_level(logging.WARNING, logger="segment"):
        ok, msg = call(client, method, {**DROPPED, "kept": 1})
    assert ok
    assert client.flush(timeout=10) == 0
    [message] = server.messages()
    sent = carried(message, method)
    assert sent["kept"] == 1
    assert sent["cycle"] == {"name": "loop"}
    assert sent["tuple_key"] == {}
    assert "bad_bytes" not in sent and "thing" not in sent
    carrier_depth = 3 if method == "alias" else 2  # the message is level 1
    assert json.dumps(sent["deep"]).count("[") == MAX_DEPTH - carrier_depth
    [warning] = [r for r in caplog.records if "cannot be sent as JSON" in r.message]
    for name in ("cycle.self", "deep", "(1, 2)", "bad_bytes", "thing"):
        assert name in warning.message
    assert carried(msg, method)["kept"] == 1  # the returned message is what was sent


def test_the_fast_path_is_kept_for_ordinary_messages() -> None:
    msg = {"type": "track", "properties": {"plan": "pro", "n": 2**62}}
    _, returned = encode_message(msg)
    assert returned is msg  # orjson took it as it was: no sanitized copy


def test_only_validation_and_size_raise() -> None:
    client = Client("wk", send=False)
    with pytest.raises(AssertionError):
        client.track("u1", None)
    with pytest.raises(RuntimeError, match="32kb"):
        client.track("u1", "e", {"big": "x" * 40000, "n": 2**70})
    assert client.track("u1", "e", {**DELIVERED, **DROPPED})[0]


# -- the property: any JSON-like tree with hostile leaves and keys ----------------------------


class Color(Enum):
    RED = "red"
    WEIRD = object()


@dataclass
class Point:
    x: int
    y: Any


text = st.text(st.characters(exclude_categories=[]), max_size=8)
leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    text,
    st.binary(max_size=6),
    st.decimals(),
    st.datetimes(),
    st.dates(),
    # orjson 3.11.8 to 3.13.0 write a time with 10,000 to 99,999 microseconds without the
    # leading zero of its fraction (README, "Messages"); analytics-python drops times anyway.
    st.times().filter(lambda t: not 10_000 <= t.microsecond < 100_000),
    st.uuids(),
    st.sampled_from(list(Color)),
    st.complex_numbers(),
    st.builds(object),
    st.builds(Point, st.integers(), st.integers() | text),
)
keys = st.one_of(
    text, st.integers(), st.floats(), st.booleans(), st.none(), st.tuples(st.integers())
)
trees = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.tuples(children, children),
        st.frozensets(st.integers() | text, max_size=3),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=25,
)


def with_cycle(tree: Any) -> dict[str, Any]:
    holder: dict[str, Any] = {"tree": tree}
    holder["again"] = [holder]
    return holder


hostile = st.one_of(
    trees,
    trees.map(with_cycle),
    st.builds(lambda tree, depth: [tree, nested(depth)], trees, st.integers(240, 400)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hostile)
def test_no_tree_makes_the_encoder_raise(tree: Any) -> None:
    msg = {"type": "track", "userId": "u1", "properties": {"x": tree}}
    data, _ = encode_message(msg)  # never raises
    sent = json.loads(data)  # always valid JSON
    reference, _ = sanitize(msg)
    assert sent == json.loads(json.dumps(reference, allow_nan=False))
    assert Client("wk", send=False).track("u1", "e", {"x": tree})[0] or len(data) > 32768


def test_before_send_sees_hostile_values_exactly(make_client: MakeClient) -> None:
    seen: list[dict[str, Any]] = []

    def hook(message: dict[str, Any]) -> dict[str, Any]:
        seen.append(message["properties"])
        return message

    client = make_client(before_send=hook)
    ok, msg = client.track("u1", "e", {"n": 2**70, "s": "ab\ud800", "bad": b"\xff"})
    assert ok
    assert seen == [{"n": 2**70, "s": "ab\ud800"}]
    assert msg["properties"] == {"n": 2**70, "s": "ab\ud800"}
    assert client.flush(timeout=10) == 0
