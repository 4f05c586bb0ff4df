"""The SQLite event store: dedup, persistence, queries and counts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from segment_clone.collector import store as store_module
from segment_clone.collector.live import RATE_WINDOW, Changes
from segment_clone.collector.store import Delivery, EventStore, Query, Row


def row(key: str, type_: str = "track", user: str = "u1", event: str | None = "E") -> Row:
    body = f'{{"type":"{type_}","messageId":"{key}","userId":"{user}","event":"{event}"}}'
    return Row(type_, key, user, event, body, link_key=key)  # as the Segment API makes it


@pytest.fixture
def store(tmp_path: Path) -> EventStore:
    with EventStore(tmp_path / "events.db") as opened:
        yield opened


def test_add_reports_stored_and_duplicates(store: EventStore) -> None:
    assert store.add("segment", [row("a"), row("b")]) == (2, 0)
    assert store.add("segment", [row("b"), row("c"), row("c")]) == (1, 2)
    assert store.count() == 3
    assert store.stats()["duplicates"] == 2


def test_the_database_is_in_wal_mode(store: EventStore, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "events.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_reopening_keeps_events_duplicate_counts_and_dedup(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    with EventStore(path) as first:
        first.add("segment", [row("a"), row("b"), row("a")])
    with EventStore(path) as second:
        assert [s.message()["messageId"] for s in second.find()] == ["a", "b"]
        assert second.add("segment", [row("a"), row("c")]) == (1, 1)
        assert second.stats()["duplicates"] == 2


def test_dedup_is_per_source(store: EventStore) -> None:
    assert store.add("segment", [row("same")]) == (1, 0)
    assert store.add("mixpanel", [row("same")]) == (1, 0)
    stats = store.stats()
    assert {s: v["total"] for s, v in stats["sources"].items()} == {"mixpanel": 1, "segment": 1}


def test_find_filters_and_keeps_the_most_recent_in_order(store: EventStore) -> None:
    store.add("segment", [row("1", user="ada"), row("2", type_="identify", event=None)])
    store.add("segment", [row("3", user="ada", event="Other"), row("4", user="ada")])
    ids = lambda q: [s.message()["messageId"] for s in store.find(q)]  # noqa: E731
    assert ids(Query()) == ["1", "2", "3", "4"]
    assert ids(Query(type="track")) == ["1", "3", "4"]
    assert ids(Query(user_id="ada", event="E")) == ["1", "4"]
    assert ids(Query(limit=2)) == ["3", "4"]
    assert ids(Query(source="mixpanel")) == []
    assert store.count(Query(user_id="ada")) == 3


def test_stats_count_by_source_and_type(store: EventStore) -> None:
    store.add("segment", [row("1"), row("2"), row("3", type_="page", event=None), row("1")])
    assert store.stats() == {
        "total": 3,
        "duplicates": 1,
        "invalid": 0,
        "rejected": {},
        "sources": {"segment": {"total": 3, "duplicates": 1, "types": {"page": 1, "track": 2}}},
    }


def test_a_hash_collision_does_not_lose_a_message(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "dedup_hash", lambda *args: 7)
    assert store.add("segment", [row("a"), row("b")]) == (2, 0)
    assert store.add("segment", [row("a"), row("b"), row("c")]) == (1, 2)
    assert [s.message()["messageId"] for s in store.find()] == ["a", "b", "c"]


def test_a_failed_write_stores_nothing_of_the_request(store: EventStore) -> None:
    bad = Row("track", "x", None, None, None)  # type: ignore[arg-type]  # body is NOT NULL
    with pytest.raises(sqlite3.IntegrityError):
        store.add("segment", [row("ok"), bad])
    assert store.count() == 0
    assert store.add("segment", [row("ok")]) == (1, 0)


def test_a_closed_store_refuses_writes(tmp_path: Path) -> None:
    opened = EventStore(tmp_path / "events.db")
    opened.close()
    with pytest.raises(RuntimeError):
        opened.add("segment", [row("a")])


OLD_SCHEMA = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, type TEXT NOT NULL,
    dedup_hash INTEGER UNIQUE, dedup_key TEXT NOT NULL, user_id TEXT, event TEXT,
    received_at REAL NOT NULL, body TEXT NOT NULL
);
CREATE TABLE duplicates (source TEXT PRIMARY KEY, count INTEGER NOT NULL);
"""


def test_a_database_from_before_the_debugger_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
        conn.execute(
            "INSERT INTO events (source, type, dedup_hash, dedup_key, user_id, event,"
            " received_at, body) VALUES ('segment', 'track', ?, 'a', 'u1', 'E', 1.0, ?)",
            (store_module.dedup_hash("segment", "a"), row("a").body),
        )
    conn.close()
    with EventStore(path) as upgraded:
        assert upgraded.add("segment", [row("a"), row("b")]) == (1, 1)
        [old, new] = upgraded.entries(Query(), oldest_first=True)
        assert (old.dedup_key, old.dup_hits, old.request_id, old.violations) == ("a", 1, None, None)
        assert new.dedup_key == "b"
        entry = upgraded.entry(old.id)
        assert entry is not None
        assert entry[1]["endpoint"] is None  # stored before requests were logged


def test_duplicates_are_counted_on_the_stored_row(store: EventStore) -> None:
    store.add("segment", [row("a"), row("a"), row("b")])
    store.add("segment", [row("a")])
    hits = {e.dedup_key: e.dup_hits for e in store.entries(Query())}
    assert hits == {"a": 2, "b": 0}


def test_refused_requests_and_faulted_keys_are_logged(store: EventStore) -> None:
    store.log_refused(Delivery("segment", "/v1/batch", gzip=False, status=400))
    store.log_refused(Delivery("segment", "/v1/batch", True, 503, 1, "status 503"), ["a"])
    store.add("segment", [row("a")], Delivery("segment", "/v1/batch", True, messages=1))
    assert store.stats()["rejected"] == {"400": 1}
    [entry] = store.entries(Query())
    found = store.entry(entry.id)
    assert found is not None
    delivery = found[1]
    assert (delivery["endpoint"], delivery["gzip"], delivery["batch_size"]) == (
        "/v1/batch",
        True,
        1,
    )
    assert [a["fault"] for a in delivery["faulted_attempts"]] == ["status 503"]


def test_reset_forgets_everything_and_tells_the_listener(tmp_path: Path) -> None:
    writes: list[int] = []
    with EventStore(tmp_path / "e.db", on_write=writes.append) as store:
        store.add("segment", [row("a"), row("a")])
        store.log_refused(Delivery("segment", "/v1/batch", False, 401))
        store.reset()
        assert store.stats() == {
            "total": 0, "duplicates": 0, "invalid": 0, "rejected": {}, "sources": {}
        }  # fmt: skip
        assert store.add("segment", [row("a")]) == (1, 0)
    assert writes == [1, 0, 0, 1]


def test_the_rate_counts_stored_messages_per_second_of_the_last_minute() -> None:
    now = [1000.2]
    changes = Changes(clock=lambda: now[0])
    changes.wrote(3)
    changes.wrote(0)
    now[0] = 1002.9
    changes.wrote(5)
    rate = changes.rate()
    assert len(rate) == RATE_WINDOW
    assert rate[-3:] == [3, 0, 5]
    now[0] = 1000.5 + RATE_WINDOW  # second 1000 has left the window
    assert changes.rate()[:2] == [0, 5]
    assert sum(changes.rate()) == 5
    now[0] = 5000.0
    assert sum(changes.rate()) == 0
