"""Links between a Segment message and the Mixpanel records made from it (same ``$insert_id``),
as ``/api/entry`` shows them, both ways, on a real collector."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any, Callable

import pytest

from segment_clone import Client
from segment_clone.collector import Collector
from segment_clone.collector import store as store_module
from segment_clone.collector.store import EventStore, Query
from segment_clone.destinations import Mixpanel, Segment

from ..api import get, post
from .both_sides import deliver_both, deliver_mixpanel, message
from .plans import mixpanel_event

UUID = "0b0c1d2e-3f40-4152-8364-758697a8b9ca"


def entry(collector: Collector, id_: int) -> dict[str, Any]:
    found: dict[str, Any] = get(collector.url, f"/api/entry?id={id_}")
    return found


def ids(collector: Collector, source: str) -> list[int]:
    listed = get(collector.url, f"/api/entries?source={source}&order=asc")["entries"]
    return [e["id"] for e in listed]


def test_a_message_and_its_record_link_to_each_other(collector: Collector) -> None:
    deliver_both(
        collector,
        message("track", UUID, event="Order Completed", properties={"revenue": 9.5}),
        message("page", "page-1", name="Pricing"),
    )
    track, page = ids(collector, "segment")
    imported, viewed = ids(collector, "mixpanel")
    assert entry(collector, track)["links"] == [
        {"id": imported, "source": "mixpanel", "type": "import", "event": "Order Completed"}
    ]
    assert entry(collector, imported)["links"] == [
        {"id": track, "source": "segment", "type": "track", "event": "Order Completed"}
    ]
    assert [link["id"] for link in entry(collector, page)["links"]] == [viewed]
    assert [link["id"] for link in entry(collector, viewed)["links"]] == [page]


def test_a_message_id_mixpanel_cannot_take_links_by_its_digest(collector: Collector) -> None:
    message_id = "order 42/attempt 1"  # a space and a slash: not a valid $insert_id
    deliver_both(collector, message("track", message_id, event="Order Completed"))
    [segment], [mixpanel] = ids(collector, "segment"), ids(collector, "mixpanel")
    [record] = collector.events(source="mixpanel")
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:32]
    assert record["properties"]["$insert_id"] == digest
    assert [link["id"] for link in entry(collector, segment)["links"]] == [mixpanel]
    assert [link["id"] for link in entry(collector, mixpanel)["links"]] == [segment]


def test_records_and_messages_without_a_twin_show_no_link(collector: Collector) -> None:
    deliver_both(collector, message("track", UUID, event="Order Completed"))
    deliver_mixpanel(collector, "track", mixpanel_event("Clicked", {}, "f" * 32))
    deliver_mixpanel(collector, "track", {"event": "No Id", "properties": {"token": "t"}})
    deliver_mixpanel(collector, "engage", {"$token": "t", "$distinct_id": "ada", "$set": {}})
    assert post(collector.url, "/v1/track", message("track", "alone", event="X")).status == 200
    [twin, alone] = ids(collector, "segment")
    [linked, *unlinked] = ids(collector, "mixpanel")
    assert [link["id"] for link in entry(collector, twin)["links"]] == [linked]
    assert entry(collector, alone)["links"] == []
    assert [entry(collector, id_)["links"] for id_ in unlinked] == [[], [], []]


def test_identify_links_its_identify_event_not_the_profile_update(collector: Collector) -> None:
    deliver_both(collector, message("identify", UUID, traits={"email": "ada@example.com"}))
    [identify] = ids(collector, "segment")
    records = get(collector.url, "/api/entries?source=mixpanel&order=asc")["entries"]
    assert [(r["type"], r["event"]) for r in records] == [
        ("track", "$identify"),
        ("engage", "$set"),
    ]
    assert [link["event"] for link in entry(collector, identify)["links"]] == ["$identify"]
    assert entry(collector, records[1]["id"])["links"] == []


def test_links_are_listed_oldest_first_up_to_a_bound(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "MAX_LINKS", 2)
    deliver_both(collector, message("track", UUID, event="Order Completed"))
    [record] = collector.events(source="mixpanel")
    for later in (1, 2):  # the same event sent again at another time: not a duplicate
        again = {**record["properties"], "time": record["properties"]["time"] + later}
        deliver_mixpanel(collector, "import", {**record, "properties": again})
    [segment], records = ids(collector, "segment"), ids(collector, "mixpanel")
    assert [link["id"] for link in entry(collector, segment)["links"]] == records[:2]


def test_links_need_no_index_of_their_own(collector: Collector) -> None:
    sql = "EXPLAIN QUERY PLAN " + store_module.LINKED.format(columns="id")
    with sqlite3.connect(collector.store.path) as conn:
        indexes = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
        ).fetchall()
        plan = [step[-1] for step in conn.execute(sql, (1, 2, "segment", "segment")).fetchall()]
    conn.close()
    assert sorted(name for (name,) in indexes) == ["events_unhashed", "sqlite_autoindex_events_1"]
    assert plan and not [step for step in plan if step.startswith("SCAN")], plan


def test_links_survive_hash_collisions(
    collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = store_module.dedup_hash
    # every message of one $insert_id collides with the others: all but one get no hash
    monkeypatch.setattr(store_module, "dedup_hash", lambda *args: hashed(*args) & ~0xFFFFFFFF)
    deliver_both(collector, message("track", UUID, event="A"), message("track", "x y", event="B"))
    a, b = ids(collector, "segment")
    record_a, record_b = ids(collector, "mixpanel")
    assert [link["id"] for link in entry(collector, a)["links"]] == [record_a]
    assert [link["id"] for link in entry(collector, b)["links"]] == [record_b]
    assert [link["id"] for link in entry(collector, record_a)["links"]] == [a]
    assert [link["id"] for link in entry(collector, record_b)["links"]] == [b]


def test_a_database_from_before_links_is_rehashed_and_keeps_deduplicating(
    make_collector: Callable[..., Collector], tmp_path: Path
) -> None:
    path = tmp_path / "before-links.db"
    collector = make_collector(db_path=path)
    first = message("track", UUID, event="A")
    deliver_both(collector, first, message("track", "x y", event="B"))
    collector.close()
    with sqlite3.connect(path) as conn:  # hashed as before links, with main's brief link index
        for id_, source, key in conn.execute("SELECT id, source, dedup_key FROM events").fetchall():
            old = store_module.dedup_hash(source, key)
            conn.execute("UPDATE events SET dedup_hash = ? WHERE id = ?", (old, id_))
        conn.execute("CREATE INDEX events_link ON events (id)")
        conn.execute("PRAGMA user_version = 0")
    conn.close()
    with EventStore(path) as upgraded:
        entries = upgraded.entries(Query(), oldest_first=True)
        linked = {e.id: [other.id for other in upgraded.linked(e)] for e in entries}
    a, b, record_a, record_b = (e.id for e in entries)
    assert linked == {a: [record_a], b: [record_b], record_a: [a], record_b: [b]}
    reopened = make_collector(db_path=path)
    deliver_both(reopened, first)  # a retry of a message stored before: still a duplicate
    assert reopened.stats()["total"] == 4
    assert reopened.stats()["duplicates"] == 2
    with sqlite3.connect(path) as conn:
        assert (
            conn.execute("SELECT name FROM sqlite_master WHERE name = 'events_link'").fetchall()
            == []
        )
    conn.close()


def test_every_call_of_a_client_with_both_destinations_links_as_documented(
    collector: Collector,
) -> None:
    url = collector.url
    client = Client(destinations=[Segment("key", host=url), Mixpanel("tok", api_host=url)])
    client.track("ada", "Order Completed", {"revenue": 9.5})
    client.page("ada", "Shop", "Pricing")
    client.screen("ada", "App", "Home")
    client.identify("ada", {"email": "ada@example.com"}, anonymous_id="anon-1")
    client.alias("anon-1", "ada")
    client.group("ada", "acme", {"name": "Acme"})
    client.track("ada", "Custom Id", message_id="order 7/try 1")  # the SHA-256 form
    assert client.shutdown(10) == 0
    segment = get(url, "/api/entries?source=segment&order=asc")["entries"]
    links = {
        e["type"] + (e["event"] or ""): [
            (link["type"], link["event"]) for link in entry(collector, e["id"])["links"]
        ]
        for e in segment
    }
    assert links == {
        "trackOrder Completed": [("import", "Order Completed")],
        "page": [("import", "Viewed Pricing")],
        "screen": [("import", "Viewed Home")],
        "identify": [("track", "$identify")],
        "alias": [("track", "$create_alias")],
        "group": [],  # /groups updates carry no $insert_id
        "trackCustom Id": [("import", "Custom Id")],
    }
    for e in segment:
        for link in entry(collector, e["id"])["links"]:
            assert [back["id"] for back in entry(collector, link["id"])["links"]] == [e["id"]]
