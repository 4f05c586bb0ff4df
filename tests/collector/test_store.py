"""The SQLite event store: dedup, persistence, queries and counts."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from segment_clone.collector import store as store_module
from segment_clone.collector.store import EventStore, Query, Row


def row(key: str, type_: str = "track", user: str = "u1", event: str | None = "E") -> Row:
    body = f'{{"type":"{type_}","messageId":"{key}","userId":"{user}","event":"{event}"}}'
    return Row(type_, key, user, event, body)


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
    monkeypatch.setattr(store_module, "dedup_hash", lambda source, key: 7)
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
