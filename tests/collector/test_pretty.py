"""The Pretty view: the SDK call that would have produced a stored message."""

from __future__ import annotations

from typing import Any

import pytest

from segment_clone.collector.pretty import sdk_call

SEGMENT_CASES: list[tuple[str, dict[str, Any], str]] = [
    (
        "track",
        {"userId": "u1", "event": "Signed Up", "properties": {"plan": "pro", "trial": True},
         "context": {"library": {"name": "segment-clone"}}, "messageId": "m"},
        'analytics.track("u1", "Signed Up", {"plan": "pro", "trial": True})',
    ),
    (
        "track",
        {"anonymousId": "a1", "event": "Viewed", "properties": {"n": None}},
        'analytics.track(event="Viewed", properties={"n": None}, anonymous_id="a1")',
    ),
    (
        "identify",
        {"userId": 42, "traits": {"email": "ada@example.com"}, "context": {"ip": "1.2.3.4"}},
        'analytics.identify(42, {"email": "ada@example.com"}, context={"ip": "1.2.3.4"})',
    ),
    (
        "group",
        {"userId": "u1", "groupId": "acme", "traits": {}},
        'analytics.group("u1", "acme")',
    ),
    (
        "page",
        {"userId": "u1", "name": "Pricing", "properties": {"path": "/pricing"}},
        'analytics.page("u1", name="Pricing", properties={"path": "/pricing"})',
    ),
    (
        "screen",
        {"userId": "u1", "category": "Docs", "name": "Home"},
        'analytics.screen("u1", "Docs", "Home")',
    ),
    ("alias", {"previousId": "anon-7", "userId": "u1"}, 'analytics.alias("anon-7", "u1")'),
]  # fmt: skip


@pytest.mark.parametrize(("type_", "message", "call"), SEGMENT_CASES)
def test_segment_messages_become_analytics_calls(
    type_: str, message: dict[str, Any], call: str
) -> None:
    assert sdk_call("segment", type_, {"type": type_, **message}) == call


def test_long_arguments_are_laid_out_on_lines() -> None:
    props = {f"property_{i}": i * 1.5 for i in range(5)}
    call = sdk_call("segment", "track", {"userId": "u1", "event": "E", "properties": props})
    assert call.splitlines() == [
        "analytics.track(",
        '    "u1",',
        '    "E",',
        "    {",
        '        "property_0": 0.0,',
        '        "property_1": 1.5,',
        '        "property_2": 3.0,',
        '        "property_3": 4.5,',
        '        "property_4": 6.0,',
        "    },",
        ")",
    ]
    hostile = sdk_call("segment", "track", {"userId": 'x"); import os; ("', "event": "E"})
    assert hostile == 'analytics.track("x\\"); import os; (\\"", "E")'


LIBRARY = {"token": "t", "distinct_id": "u1", "time": 1700000000, "$insert_id": "i",
           "mp_lib": "python", "$lib_version": "1"}  # fmt: skip
MIXPANEL_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("track", {"event": "Clicked", "properties": {**LIBRARY, "button": "buy"}},
     'mp.track("u1", "Clicked", {"button": "buy"})'),
    ("track", {"event": "Clicked", "properties": LIBRARY}, 'mp.track("u1", "Clicked")'),
    ("import", {"event": "Old", "properties": {**LIBRARY, "a": 1}},
     'mp.import_data(None, "u1", "Old", 1700000000, {"a": 1})'),
    ("engage", {"$token": "t", "$distinct_id": "u1", "$set": {"plan": "pro"}},
     'mp.people_set("u1", {"plan": "pro"})'),
    ("engage", {"$token": "t", "$distinct_id": "u1", "$add": {"logins": 1}},
     'mp.people_increment("u1", {"logins": 1})'),
    ("engage", {"$token": "t", "$distinct_id": "u1", "$unset": ["a"]},
     'mp.people_unset("u1", ["a"])'),
    ("engage", {"$token": "t", "$distinct_id": "u1", "$delete": ""}, 'mp.people_delete("u1")'),
    ("groups", {"$token": "t", "$group_key": "company", "$group_id": "acme", "$set": {"n": 1}},
     'mp.group_set("company", "acme", {"n": 1})'),
]  # fmt: skip


@pytest.mark.parametrize(("type_", "record", "call"), MIXPANEL_CASES)
def test_mixpanel_records_become_facade_calls(
    type_: str, record: dict[str, Any], call: str
) -> None:
    assert sdk_call("mixpanel", type_, record) == call
