"""Hostile requests get a 4xx, never a 500 and never silence; and the integrity holes of issue 26
(dedupe by type, /import apart from /track, the faulted table's full key, gzip trailing data)."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any, Callable

import pytest

from segment_clone.collector import Collector, Faults, FaultSettings
from segment_clone.collector.store import Query, dedup_hash

from ..api import Reply, call, get, post
from .plans import mixpanel_event

MakeCollector = Callable[..., Collector]
JSON = {"Content-Type": "application/json"}


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def track(**fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "ada", "event": "E", **fields}


@pytest.mark.parametrize("depth", [253, 600, 1022])
def test_deep_nesting_is_a_400_on_every_ingestion_endpoint(
    collector: Collector, depth: int
) -> None:
    x = nested(depth)  # inside the message and its properties: orjson stores at most 254
    segment = '{"type":"track","userId":"a","event":"e","properties":{"x":' + x + "}}"
    record = '{"event":"e","properties":{"token":"t","distinct_id":"a","x":' + x + "}}"
    profile = '{"$token":"t","$distinct_id":"a","$set":{"x":' + x + "}}"
    group = '{"$token":"t","$group_key":"k","$group_id":"g","$set":{"x":' + x + "}}"
    bodies = {
        "/v1/track": segment,
        "/v1/batch": f'{{"batch":[{segment}]}}',
        "/track": record,
        "/import": record,
        "/engage": profile,
        "/groups": group,
    }
    for path, body in bodies.items():
        reply = call(collector.url, "POST", path, body.encode(), JSON)
        assert reply.status == 400, (path, reply.body)
    assert collector.store.count() == 0


@pytest.mark.parametrize("time", ["1e20", "-1e20", "100000000000000000000", "1e400"])
def test_a_mixpanel_time_beyond_any_date_is_answered(collector: Collector, time: str) -> None:
    record = '{"event":"e","properties":{"token":"t","distinct_id":"a","time":%s,"$insert_id":"i"}}'
    reply = call(collector.url, "POST", "/import", (record % time).encode(), JSON)
    assert reply.status in (200, 400), reply.body


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("/api/events?limit=99999999999999999999", "limit"),
        ("/api/entries?after=99999999999999999999", "after"),
        ("/api/entries?before=1e400", "before"),
        ("/api/entry?id=99999999999999999999", "id"),
        ("/api/events?wait=99999999999999999999&timeout=0", "wait"),
        ("/api/events?timeout=nan&wait=1", "timeout"),
    ],
)
def test_a_bad_query_value_is_a_400_naming_the_parameter(
    collector: Collector, query: str, name: str
) -> None:
    reply = call(collector.url, "GET", query)
    assert reply.status == 400
    assert reply.json()["message"].startswith(f"{name} must be")


def test_an_event_with_a_context_that_is_not_an_object_can_be_opened(collector: Collector) -> None:
    assert post(collector.url, "/v1/track", track(context=[1], messageId="c")).status == 200
    [entry] = get(collector.url, "/api/entries")["entries"]
    opened = get(collector.url, f"/api/entry?id={entry['id']}")
    assert "context=[1]" in opened["pretty"]


@pytest.mark.parametrize("retry", ["two", "\u00b2", "9" * 30, "-1"])
def test_a_bad_retry_count_is_ignored_even_under_fault_injection(
    make_collector: MakeCollector, retry: str
) -> None:
    plain = make_collector()
    assert post(plain.url, "/v1/track", track(), headers={"X-Retry-Count": retry}).status == 200
    faulty = make_collector(faults=Faults(FaultSettings(fail_rate=1.0)))
    failed = post(faulty.url, "/v1/track", track(), headers={"X-Retry-Count": retry})
    assert failed.status == 503
    assert faulty.stats()["faults"]["injected"] == 1


@pytest.mark.parametrize(
    "body",
    [b'{"delay_ms": 1e308}', b'{"delay_ms": "nan"}', b'{"retry_after": 1e308}',
     b'{"fail_rate": "nan"}', b'{"delay_ms": 1' + b"0" * 400 + b"}"],
)  # fmt: skip
def test_fault_settings_beyond_reason_are_a_400(collector: Collector, body: bytes) -> None:
    reply = call(collector.url, "POST", "/api/faults", body, JSON)
    assert reply.status == 400, reply.body
    assert collector.faults.settings == FaultSettings()


# -- integrity -----------------------------------------------------------------------------------


def test_message_ids_are_compared_by_value_and_type(collector: Collector) -> None:
    batch = [track(messageId=12345), track(messageId="12345"), track(messageId=12345)]
    assert post(collector.url, "/v1/batch", {"batch": batch}).status == 200
    assert [m["messageId"] for m in collector.events()] == [12345, "12345"]
    assert collector.stats()["duplicates"] == 1


def basic(secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{secret}:".encode()).decode()}


def test_with_a_secret_an_unauthenticated_track_cannot_pre_empt_an_import(
    make_collector: MakeCollector,
) -> None:
    guarded = make_collector(mixpanel_secret="s3cret")
    record = mixpanel_event("Bought", {}, "same-insert-id")
    assert post(guarded.url, "/track", [record]).status == 200
    assert post(guarded.url, "/import", [record], headers=basic("s3cret")).status == 200
    assert post(guarded.url, "/import", [record], headers=basic("s3cret")).status == 200
    assert [e.type for e in guarded.store.entries(Query())] == ["import", "track"]
    open_ = make_collector()
    assert post(open_.url, "/track", [record]).status == 200
    assert post(open_.url, "/import", [record]).status == 200
    assert open_.store.count() == 1  # one project, one dedupe: as Mixpanel does


def test_insert_ids_are_compared_by_value_and_type(collector: Collector) -> None:
    records = [mixpanel_event("E", {}, "5"), mixpanel_event("E", {}, "5")]
    records[1]["properties"]["$insert_id"] = 5
    assert post(collector.url, "/import", records).status == 200
    assert collector.store.count() == 2


def test_a_faulted_attempt_is_shown_only_for_its_own_key(make_collector: MakeCollector) -> None:
    """A hash collision is made by hand: the refused request's key is another, its hash ours."""
    faulty = make_collector(faults=Faults(FaultSettings(fail_rate=1.0)))
    assert post(faulty.url, "/v1/track", track(messageId="other")).status == 503
    ours = json.dumps("ours")
    with faulty.store._transaction() as conn:
        conn.execute("UPDATE faulted SET dedup_hash = ?", (dedup_hash("segment", ours),))
    faulty.faults.update({"fail_rate": 0})
    assert post(faulty.url, "/v1/track", track(messageId="ours")).status == 200
    [entry] = get(faulty.url, "/api/entries")["entries"]
    assert get(faulty.url, f"/api/entry?id={entry['id']}")["delivery"]["faulted_attempts"] == []


def test_gzip_trailing_data_is_refused(collector: Collector) -> None:
    body = gzip.compress(json.dumps({"batch": [track()]}).encode())
    for trailing in (b"garbage", gzip.compress(b"{}")):
        reply: Reply = call(
            collector.url,
            "POST",
            "/v1/batch",
            body + trailing,
            {**JSON, "Content-Encoding": "gzip"},
        )
        assert (reply.status, reply.json()["code"]) == (400, "invalid_gzip")
    assert collector.store.count() == 0
