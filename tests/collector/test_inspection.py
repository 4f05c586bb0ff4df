"""The read side: /api/events (filters, wait), /api/entries, /api/entry (delivery), /api/stats,
/api/reset, /api/stream and the debugger page's headers."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import pytest

from segment_clone.collector import MAX_MESSAGE_BYTES, Collector, Faults, FaultSettings

from ..api import call, get, post, track


def seed(collector: Collector) -> None:
    batch = [
        track("ada", "Signed Up", "1"),
        {"type": "identify", "userId": "ada", "messageId": "2"},
        track("bob", "Signed Up", "3"),
        track("ada", "Logged In", "4"),
        {"type": "page", "anonymousId": "anon", "name": "Home", "messageId": "5"},
    ]
    assert post(collector.url, "/v1/batch", {"batch": batch}).status == 200


def ids(collector: Collector, query: str) -> tuple[int, list[str]]:
    reply = get(collector.url, "/api/events" + query)
    return reply["total"], [m["messageId"] for m in reply["events"]]


def test_events_are_filtered_and_listed_oldest_first(collector: Collector) -> None:
    seed(collector)
    assert ids(collector, "") == (5, ["1", "2", "3", "4", "5"])
    assert ids(collector, "?type=track") == (3, ["1", "3", "4"])
    assert ids(collector, "?user_id=ada") == (3, ["1", "2", "4"])
    assert ids(collector, "?event=Signed%20Up") == (2, ["1", "3"])
    assert ids(collector, "?type=track&user_id=ada&event=Logged+In") == (1, ["4"])
    assert ids(collector, "?type=&user_id=&event=") == (5, ["1", "2", "3", "4", "5"])


def test_limit_keeps_the_most_recent_and_total_counts_all(collector: Collector) -> None:
    seed(collector)
    assert ids(collector, "?limit=2") == (5, ["4", "5"])
    assert ids(collector, "?type=track&limit=1") == (3, ["4"])


def test_a_bad_limit_is_a_400(collector: Collector) -> None:
    for bad in ("0", "-1", "ten"):
        reply = call(collector.url, "GET", f"/api/events?limit={bad}")
        assert reply.status == 400
        assert reply.json()["code"] == "invalid_request"


def test_stats_count_by_source_and_type(collector: Collector) -> None:
    seed(collector)
    stats = get(collector.url, "/api/stats")
    assert stats["total"] == 5
    assert stats["duplicates"] == 0
    assert stats["sources"] == {
        "segment": {"total": 5, "duplicates": 0, "types": {"identify": 1, "page": 1, "track": 3}}
    }


def test_free_text_user_and_source_filters(collector: Collector) -> None:
    seed(collector)
    assert ids(collector, "?q=logged") == (1, ["4"])
    assert ids(collector, "?q=%22Signed%20Up%22&user=bob") == (1, ["3"])
    assert ids(collector, "?user=anon") == (1, ["5"])
    assert ids(collector, "?q=50%25_off") == (0, [])  # LIKE wildcards are taken literally
    assert ids(collector, "?source=segment&limit=1") == (5, ["5"])
    assert ids(collector, "?source=mixpanel") == (0, [])
    for bad in ("source=amplitude", "valid=maybe", "after=-1", "wait=x", "timeout=nan"):
        assert call(collector.url, "GET", f"/api/entries?{bad}").status == 400, bad
        reply = call(collector.url, "GET", f"/api/events?{bad}")
        assert (reply.status, reply.json()["code"]) == (400, "invalid_request"), bad


def entries(collector: Collector, query: str = "") -> dict[str, Any]:
    answer: dict[str, Any] = get(collector.url, "/api/entries" + query)
    return answer


def test_entries_page_through_every_event_in_arrival_order(collector: Collector) -> None:
    batch = [track("u", f"E{i}", f"m{i}") for i in range(1, 8)]
    assert post(collector.url, "/v1/batch", {"batch": batch}).status == 200
    first = entries(collector, "?limit=3")
    assert [e["id"] for e in first["entries"]] == [7, 6, 5]
    assert (first["total"], first["count"]) == (7, 7)
    assert call(collector.url, "GET", "/api/entries?order=sideways").status == 400
    older = entries(collector, "?limit=3&before=5")
    assert [e["id"] for e in older["entries"]] == [4, 3, 2]
    assert (older["total"], older["count"]) == (7, 4)
    oldest = entries(collector, "?limit=3&after=0&order=asc")
    assert [e["id"] for e in oldest["entries"]] == [1, 2, 3]
    newer = entries(collector, "?limit=3&after=5&order=asc&event=E7")
    assert [(e["id"], e["event"]) for e in newer["entries"]] == [(7, "E7")]
    [entry] = entries(collector, "?limit=1")["entries"]
    assert json.loads(entry["raw"]) == batch[-1]
    assert entry["raw"] == json.dumps(batch[-1], separators=(",", ":"))  # as stored
    assert {k: entry[k] for k in ("source", "type", "user", "valid", "violations")} == {
        "source": "segment",
        "type": "track",
        "user": "u",
        "valid": True,
        "violations": [],
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["received_at"])


def test_an_entry_shows_its_delivery_and_the_call_that_made_it(
    make_collector: Callable[..., Collector],
) -> None:
    collector = make_collector(faults=Faults(FaultSettings(delay_ms=1)))
    batch = [track("ada", "Signed Up", "d1"), track("ada", "Other", "d2")]
    headers = {"X-Retry-Count": "2"}
    assert post(collector.url, "/v1/batch", {"batch": batch}, gzip=True, headers=headers).status
    assert post(collector.url, "/v1/track", batch[0]).status == 200  # a duplicate
    assert post(collector.url, "/v1/track", batch[0]).status == 200
    detail = get(collector.url, "/api/entry?id=1")
    assert detail["delivery"] == {
        "endpoint": "/v1/batch",
        "status": 200,
        "gzip": True,
        "batch_size": 2,
        "fault": "delay 1 ms",
        "retry": 2,
        "duplicates": 2,
        "faulted_attempts": [],
    }
    assert detail["pretty"] == 'analytics.track("ada", "Signed Up")'
    assert get(collector.url, "/api/entry?id=2")["delivery"]["duplicates"] == 0
    for missing in ("3", "0", "x"):
        assert call(collector.url, "GET", f"/api/entry?id={missing}").status in (400, 404)


def test_faults_injected_before_an_event_was_stored_show_in_its_delivery(
    collector: Collector,
) -> None:
    collector.faults.update({"fail_rate": 1, "fail_status": 503})
    message = track("ada", "Retried", "r1")
    for _ in range(2):
        assert post(collector.url, "/v1/batch", {"batch": [message]}).status == 503
    collector.faults.update({"fail_rate": 0})
    assert post(collector.url, "/v1/batch", {"batch": [message]}).status == 200
    attempts = get(collector.url, "/api/entry?id=1")["delivery"]["faulted_attempts"]
    assert [(a["endpoint"], a["status"], a["fault"]) for a in attempts] == [
        ("/v1/batch", 503, "status 503"),
        ("/v1/batch", 503, "status 503"),
    ]
    stats = get(collector.url, "/api/stats")
    assert (stats["faults"]["injected"], stats["rejected"]) == (2, {})


def test_rejected_requests_are_counted_by_status(make_collector: Callable[..., Collector]) -> None:
    collector = make_collector(write_keys=["right"])
    auth = {"Authorization": "Basic " + base64.b64encode(b"right:").decode()}
    assert post(collector.url, "/v1/batch", b"{nope", headers=auth).status == 400
    assert post(collector.url, "/v1/batch", {"batch": [track()]}).status == 401
    big = track()
    big["properties"] = {"blob": "x" * MAX_MESSAGE_BYTES}
    assert post(collector.url, "/v1/batch", {"batch": [big]}, headers=auth).status == 413
    assert post(collector.url, "/v1/batch", b"x" * (600 * 1024), headers=auth).status == 413
    assert post(collector.url, "/track", b"data=%7B%7D", headers=auth).status == 400
    assert post(collector.url, "/v1/batch", {"batch": [track()]}, headers=auth).status == 200
    assert get(collector.url, "/api/stats")["rejected"] == {"400": 2, "401": 1, "413": 2}


def test_reset_empties_the_store_and_every_count(collector: Collector) -> None:
    seed(collector)
    seed(collector)  # duplicates
    assert post(collector.url, "/v1/batch", b"{").status == 400
    collector.faults.update({"fail_rate": 1})
    assert post(collector.url, "/v1/batch", {"batch": [track()]}).status == 503
    collector.faults.update({"fail_rate": 0})
    epoch = get(collector.url, "/api/stats")["epoch"]
    assert post(collector.url, "/api/reset", b"").status == 200
    stats = get(collector.url, "/api/stats")
    assert {k: stats[k] for k in ("total", "duplicates", "invalid", "rejected", "sources")} == {
        "total": 0,
        "duplicates": 0,
        "invalid": 0,
        "rejected": {},
        "sources": {},
    }
    assert (stats["faults"]["injected"], stats["epoch"], sum(stats["rate"])) == (0, epoch + 1, 0)
    assert get(collector.url, "/api/events") == {"total": 0, "events": []}
    seed(collector)  # the same messageIds are new again
    assert ids(collector, "") == (5, ["1", "2", "3", "4", "5"])


def test_wait_holds_the_answer_until_enough_events_match(collector: Collector) -> None:
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(get, collector.url, "/api/events?type=track&wait=2&timeout=30")
        assert post(collector.url, "/v1/track", track(message_id="w1")).status == 200
        assert post(collector.url, "/v1/identify", {"userId": "u", "messageId": "w2"}).status
        assert post(collector.url, "/v1/track", track(message_id="w3")).status == 200
        answer = waiting.result(timeout=30)
    assert answer["total"] == 2
    assert [m["messageId"] for m in answer["events"]] == ["w1", "w3"]


def test_wait_answers_with_what_there_is_at_the_timeout(collector: Collector) -> None:
    assert post(collector.url, "/v1/track", track(message_id="only")).status == 200
    answer = get(collector.url, "/api/events?wait=2&timeout=0.05")
    assert (answer["total"], [m["messageId"] for m in answer["events"]]) == (1, ["only"])
    assert get(collector.url, "/api/events?wait=1&timeout=30")["total"] == 1  # already there


def test_closing_ends_streams_and_releases_waiters(
    make_collector: Callable[..., Collector],
) -> None:
    collector = make_collector()
    stream = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)
    stream.request("GET", "/api/stream")
    response = stream.getresponse()
    assert response.readline() == b"retry: 1000\n"  # the stream is open
    with ThreadPoolExecutor(1) as pool:
        waiter = pool.submit(collector.changes.wait, lambda: False, 60)
        collector.close()
        assert waiter.result(timeout=30) is False  # released, not held for 60 s
    assert b"data: " in response.read()  # read to its end: the stream has ended
    stream.close()


def test_the_stream_rings_after_each_write_and_reset(collector: Collector) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=30)
    conn.request("GET", "/api/stream")
    response = conn.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "text/event-stream"

    def next_ring() -> dict[str, Any]:
        while True:
            line = response.readline()
            if line.startswith(b"data: "):
                ring: dict[str, Any] = json.loads(line[6:])
                return ring

    first = next_ring()
    assert post(collector.url, "/v1/track", track()).status == 200
    second = next_ring()
    assert second["version"] > first["version"]
    assert second["epoch"] == first["epoch"]
    assert post(collector.url, "/api/reset", b"").status == 200
    assert next_ring()["epoch"] == first["epoch"] + 1
    conn.close()


def test_the_page_is_one_self_contained_document_under_a_strict_policy(
    collector: Collector,
) -> None:
    seed(collector)
    evil = track("<b>mallory</b>", "<script>alert(1)</script>", "6")
    assert post(collector.url, "/v1/batch", {"batch": [evil]}).status == 200
    reply = call(collector.url, "GET", "/")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/html; charset=utf-8"
    page = reply.body.decode()
    assert "mallory" not in page and "Signed Up" not in page  # data comes only through the API
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing from elsewhere
    assert "innerHTML" not in page and "insertAdjacentHTML" not in page
    policy = dict(
        part.strip().split(" ", 1) for part in reply.headers["content-security-policy"].split(";")
    )
    [script] = re.findall(r"<script>(.*?)</script>", page, re.S)
    [style] = re.findall(r"<style>(.*?)</style>", page, re.S)
    assert policy["script-src"] == f"'{sha256(script)}'"
    assert policy["style-src"] == f"'{sha256(style)}'"
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["require-trusted-types-for"] == "'script'"
    assert reply.headers["x-content-type-options"] == "nosniff"


def sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


@pytest.mark.parametrize("path", ["/api/entries", "/api/violations", "/api/stats", "/"])
def test_read_endpoints_are_never_failed_by_fault_injection(
    make_collector: Callable[..., Collector], path: str
) -> None:
    collector = make_collector(faults=Faults(FaultSettings(fail_rate=1.0)))
    assert call(collector.url, "GET", path).status == 200
