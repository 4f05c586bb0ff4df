"""The background lanes' JSON wire against the collector and a scripted server: gzip on
``/import``, ``strict=1`` partial failures (only the refused records reach ``on_error``), and the
shared keep-alive transport that carries it."""

from __future__ import annotations

import gzip
import json
from typing import Any, Callable

import pytest

from segment_clone import request
from segment_clone.collector import Collector
from segment_clone.mixpanel import AsyncBufferedConsumer, Mixpanel, MixpanelAPIError

from ..server import Reply, ScriptedServer
from .conftest import Errors, data

MakeAsync = Callable[..., AsyncBufferedConsumer]


def imported(n: int) -> list[str]:
    """``n`` import records as JSON text, each with its own ``$insert_id``."""
    return [
        json.dumps({"event": "Old", "properties": {"time": 1.6e9 + i, "$insert_id": f"i{i}"}})
        for i in range(n)
    ]


def test_strict_import_partial_failure_reports_only_the_refused_records(
    make_collector: Callable[..., Collector], async_consumers: MakeAsync
) -> None:
    collector = make_collector()
    errors = Errors()
    consumer = async_consumers(api_host=collector.url, on_error=errors, flush_interval=30)
    records = imported(6)
    records[1] = '{"properties": {"time": 1, "$insert_id": "no-name"}}'
    records[4] = '{"event": "Old", "properties": 7}'
    for record in records:
        consumer.send("imports", record)
    assert consumer.flush(timeout=10) == 0

    stored = collector.events(source="mixpanel", type="import")
    assert sorted(e["properties"]["$insert_id"] for e in stored) == [
        "i0", "i2", "i3", "i5",
    ]  # fmt: skip
    [(error, messages)] = errors.calls
    assert messages == [json.loads(records[1]), json.loads(records[4])]
    assert isinstance(error, MixpanelAPIError)
    assert error.status == 400
    assert "2 of 6 records refused" in str(error)
    assert "record 1 ($insert_id no-name): event: record 1 needs an 'event' name" in str(error)
    assert "record 4: properties: record 4 needs a 'properties' object" in str(error)
    stats = consumer.stats()
    assert (stats["delivered"], stats["dropped"], stats["pending"]) == (4, {"rejected": 2}, 0)


def test_strict_import_answer_of_the_collector(make_collector: Callable[..., Collector]) -> None:
    """The collector answers ``strict=1`` as Mixpanel does; without it, ``verbose=1``'s way."""
    collector = make_collector()
    body = "[" + ",".join([*imported(2), '{"event": ""}']) + "]"
    session = request._session
    strict = session.post(f"{collector.url}/import?strict=1", data=body, headers=JSON)
    assert strict.status_code == 400
    assert strict.json() == {
        "code": 400,
        "error": "some data points in the request failed validation",
        "failed_records": [
            {
                "index": 2,
                "$insert_id": None,
                "field": "event",
                "message": "record 2 needs an 'event' name",
            }
        ],
        "num_records_imported": 2,
        "status": "Bad Request",
    }
    one = "[" + imported(1)[0] + "]"
    whole = session.post(f"{collector.url}/import?strict=1", data=one, headers=JSON)
    assert whole.json() == {"code": 200, "num_records_imported": 1, "status": "OK"}
    lenient = session.post(f"{collector.url}/import", data=body, headers=JSON)
    assert (lenient.status_code, lenient.json()["status"]) == (400, 0)
    stored = collector.events(source="mixpanel", type="import")
    assert [e["properties"]["$insert_id"] for e in stored] == ["i0", "i1"]  # i0 twice: once


JSON = {"Content-Type": "application/json"}


def test_import_is_gzipped_json_and_track_is_plain_json(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    mp_server.default = Reply(body={"code": 200, "num_records_imported": 1, "status": "OK"})
    consumer = make_async()
    mp = Mixpanel("tok", consumer)
    mp.import_data(None, "u1", "Old", 1.6e9, {"é": "ü"}, api_secret="S")
    assert consumer.flush(timeout=10) == 0
    [rec] = mp_server.requests
    assert rec.header("content-encoding") == "gzip"
    assert gzip.decompress(rec.raw) == rec.body
    assert data(rec)[0]["properties"]["é"] == "ü"

    mp_server.default = Reply(body={"status": 1, "error": None})
    mp.track("u1", "Now", {"é": "ü"})
    assert consumer.flush(timeout=10) == 0
    track = mp_server.requests[1]
    assert track.header("content-encoding") is None
    assert track.header("content-type") == "application/json"
    assert data(track)[0]["properties"]["é"] == "ü"


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(200, {"status": 0, "error": "bad token"}), "Mixpanel error: bad token"),
        (Reply(400, {"code": 400, "error": "not JSON"}), "Mixpanel error: not JSON"),
        (Reply(200, b"1"), "Cannot interpret Mixpanel server response: 1"),
    ],
)
def test_answers_that_accept_nothing_reject_the_whole_batch(
    mp_server: ScriptedServer, make_async: MakeAsync, reply: Reply, reason: str
) -> None:
    mp_server.default = reply
    errors = Errors()
    consumer = make_async(on_error=errors)
    for record in imported(3):
        consumer.send("imports", record)
    assert consumer.flush(timeout=10) == 0
    [(error, messages)] = errors.calls
    assert reason in str(error)
    assert len(messages) == 3
    assert consumer.stats()["dropped"] == {"rejected": 3}


def test_failed_records_outside_the_batch_are_ignored(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    refused = [{"index": 1, "message": "bad time"}, {"index": 9, "message": "not ours"}]
    mp_server.default = Reply(400, {"code": 400, "failed_records": refused})
    errors = Errors()
    consumer = make_async(on_error=errors, flush_interval=30)
    records = imported(2)
    for record in records:
        consumer.send("imports", record)
    assert consumer.flush(timeout=10) == 0
    [(error, messages)] = errors.calls
    assert messages == [json.loads(records[1])]
    assert str(error) == "1 of 2 records refused: record 1: bad time (HTTP 400, endpoint imports)"
    assert consumer.stats()["delivered"] == 1


def test_lanes_post_through_the_shared_session(
    mp_server: ScriptedServer, make_async: MakeAsync, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Segment face's seam, ``request._session``, carries the lanes' POSTs too."""
    seen: list[str] = []
    post = request._session.post

    def spy(url: str, **kwargs: Any) -> Any:
        seen.append(url)
        return post(url, **kwargs)

    monkeypatch.setattr(request._session, "post", spy)
    consumer = make_async()
    consumer.send("events", "{}")
    assert consumer.flush(timeout=10) == 0
    assert seen == [f"{mp_server.url}/track?verbose=1&ip=0"]
