"""The read side: /api/events, /api/stats and the HTML page."""

from __future__ import annotations

from segment_clone.collector import Collector

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


def test_the_page_lists_recent_events_with_html_escaped(collector: Collector) -> None:
    seed(collector)
    evil = track("<b>mallory</b>", "<script>alert(1)</script>", "6")
    assert post(collector.url, "/v1/batch", {"batch": [evil]}).status == 200
    reply = call(collector.url, "GET", "/")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("text/html")
    page = reply.body.decode()
    assert "6 events stored" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>" not in page
    assert page.index("Logged In") < page.index("Signed Up")  # newest first
