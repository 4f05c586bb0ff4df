"""The collector's SQLite event store: one row per message, deduplicated, in WAL mode.

One writer connection, used under a lock, inserts each request's messages with a single
``executemany`` of ``INSERT ... ON CONFLICT DO NOTHING`` in one transaction, so a request is
stored whole or not at all, and a message whose ``(source, dedup_key)`` is already there is
counted as a duplicate instead of being stored twice. Readers use their own connections, which
WAL lets run while the writer writes.

The unique index is on a 64-bit hash of ``(source, dedup_key)`` rather than on the text: random
UUID keys dirty one index page per message, and an integer index has about a third as many
pages as a text one, which made storing a batch some 40 % cheaper. A hash collision is detected and
the message is stored all the same (see ``_store_collisions``).
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple, Union

import orjson

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    type TEXT NOT NULL,
    dedup_hash INTEGER UNIQUE,
    dedup_key TEXT NOT NULL,
    user_id TEXT,
    event TEXT,
    received_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_unhashed ON events (source, dedup_key)
    WHERE dedup_hash IS NULL;
CREATE TABLE IF NOT EXISTS duplicates (
    source TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
"""
INSERT = (
    "INSERT INTO events (source, type, dedup_hash, dedup_key, user_id, event, received_at, body)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup_hash) DO NOTHING"
)
"""Like ``INSERT OR IGNORE``, but only a duplicate is skipped: any other constraint fails."""
SQL_VARIABLES = 500
"""Placeholders per ``IN (...)`` query, under every SQLite build's limit."""

StrPath = Union[str, Path]


class Row(NamedTuple):
    """One message to store. ``dedup_key`` is the Segment messageId (Mixpanel: $insert_id)."""

    type: str
    dedup_key: str
    user_id: str | None
    event: str | None
    body: str


@dataclass(frozen=True)
class Query:
    """Filters shared by ``/api/events``, ``segment-clone events`` and the test fixtures."""

    type: str | None = None
    user_id: str | None = None
    event: str | None = None
    source: str | None = None
    limit: int | None = None
    """The most recent ``limit`` matches (still returned oldest first); None means all."""

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = [], []
        for column in ("type", "user_id", "event", "source"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


@dataclass(frozen=True)
class Stored:
    """A stored message with the store's own metadata."""

    source: str
    type: str
    received_at: float
    body: str

    def message(self) -> dict[str, Any]:
        parsed: dict[str, Any] = orjson.loads(self.body)
        return parsed


class EventStore:
    """Thread-safe access to one SQLite database file; reopening the file keeps everything."""

    def __init__(self, path: StrPath, on_write: Callable[[], None] | None = None) -> None:
        self.path = str(path)
        self._on_write = on_write
        self._lock = threading.Lock()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._all: list[sqlite3.Connection] = []
        self._closed = False
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        self._writer.executescript(SCHEMA)
        self._checkpointer = Checkpointer(self._connect())

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        self._all.append(conn)
        return conn

    def add(self, source: str, rows: Sequence[Row]) -> tuple[int, int]:
        """Store ``rows`` in one transaction; returns ``(stored, duplicates)``."""
        now = time.time()
        params = [
            (source, r.type, dedup_hash(source, r.dedup_key), r.dedup_key, r.user_id, r.event,
             now, r.body)
            for r in rows
        ]  # fmt: skip
        with self._lock:
            if self._closed:
                raise RuntimeError("the event store is closed")
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                stored = max(conn.executemany(INSERT, params).rowcount, 0)
                if stored < len(params):
                    stored += _store_collisions(conn, params)
                duplicates = len(params) - stored
                if duplicates:
                    conn.execute(
                        "INSERT INTO duplicates (source, count) VALUES (?, ?)"
                        " ON CONFLICT (source) DO UPDATE SET count = count + excluded.count",
                        (source, duplicates),
                    )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        self._checkpointer.wrote(len(params))
        if self._on_write is not None:
            self._on_write()
        return stored, duplicates

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            with self._lock:
                if self._closed:
                    raise RuntimeError("the event store is closed") from None
                conn = self._connect()
        try:
            yield conn
        finally:
            self._readers.put(conn)

    def count(self, query: Query = Query()) -> int:
        where, params = query.where()
        with self._reader() as conn:
            (n,) = conn.execute("SELECT COUNT(*) FROM events" + where, params).fetchone()
        return int(n)

    def find(self, query: Query = Query()) -> list[Stored]:
        """Matching messages, oldest first (the most recent ``query.limit`` if set)."""
        where, params = query.where()
        sql = "SELECT id, source, type, received_at, body FROM events" + where
        if query.limit is not None:
            sql = f"SELECT * FROM ({sql} ORDER BY id DESC LIMIT ?)"
            params.append(query.limit)
        with self._reader() as conn:
            rows = conn.execute(sql + " ORDER BY id", params).fetchall()
        return [Stored(source, type_, at, body) for _, source, type_, at, body in rows]

    def stats(self) -> dict[str, Any]:
        """Counts by source and type, and duplicates refused, since the file was created."""
        with self._reader() as conn:
            counts = conn.execute(
                "SELECT source, type, COUNT(*) FROM events GROUP BY source, type ORDER BY 1, 2"
            ).fetchall()
            dups = dict(conn.execute("SELECT source, count FROM duplicates").fetchall())
        sources: dict[str, dict[str, Any]] = {}
        for source, type_, n in counts:
            entry = sources.setdefault(source, {"total": 0, "duplicates": 0, "types": {}})
            entry["total"] += n
            entry["types"][type_] = n
        for source, n in dups.items():
            sources.setdefault(source, {"total": 0, "duplicates": 0, "types": {}})
            sources[source]["duplicates"] = n
        return {
            "total": sum(s["total"] for s in sources.values()),
            "duplicates": sum(s["duplicates"] for s in sources.values()),
            "sources": sources,
        }

    def close(self) -> None:
        """Stop the checkpointer, fold the WAL into the database file, close everything."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._checkpointer.stop()
        with self._lock:
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for conn in self._all:
                conn.close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def dedup_hash(source: str, key: str) -> int:
    """A signed 64-bit hash of ``(source, key)``, the store's unique index.

    CRC-32 and Adler-32 side by side: stable across processes (unlike ``hash()``) and about
    three times cheaper than a hashlib digest. Not cryptographic, and it need not be: a
    collision costs one extra query, never a message.
    """
    data = f"{source}\0{key}".encode()
    return (zlib.crc32(data) << 32 | zlib.adler32(data)) - (1 << 63)


def _store_collisions(conn: sqlite3.Connection, params: list[tuple[Any, ...]]) -> int:
    """Store the rows that were skipped only because another key has the same hash; returns
    how many. Runs only when a request had duplicates, which is rare.

    Such a row is stored with a NULL hash (a UNIQUE column allows any number of NULLs) unless
    its key is already among the NULL-hash rows, which a partial index keeps cheap to ask.
    """
    known: dict[int, str] = {}
    hashes = list({p[2] for p in params})
    for i in range(0, len(hashes), SQL_VARIABLES):
        chunk = hashes[i : i + SQL_VARIABLES]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT dedup_hash, dedup_key FROM events WHERE dedup_hash IN ({marks})"
        known.update(conn.execute(sql, chunk).fetchall())
    stored = 0
    for p in params:
        source, key = p[0], p[3]
        if known[p[2]] == key:
            continue
        exists = conn.execute(
            "SELECT 1 FROM events WHERE dedup_hash IS NULL AND source = ? AND dedup_key = ?",
            (source, key),
        ).fetchone()
        if exists is None:
            conn.execute(INSERT, (*p[:2], None, *p[3:]))
            stored += 1
    return stored


class Checkpointer(threading.Thread):
    """Copies the WAL back into the database file off the request path.

    SQLite's automatic checkpoint runs inside a writer's ``COMMIT`` and, with
    ``synchronous=NORMAL``, ends in an fsync, so every so often one request held the writer lock
    through a disk flush. Here a thread with its own connection runs a PASSIVE checkpoint (which
    never blocks the writer) after every ``every_rows`` stored rows or ``interval`` seconds.
    """

    def __init__(self, conn: sqlite3.Connection, every_rows: int = 5000, interval: float = 1.0):
        super().__init__(name="segment-clone-checkpoint", daemon=True)
        self._conn = conn
        self._every_rows = every_rows
        self._interval = interval
        self._pending = 0
        self._wake = threading.Event()
        self._stopping = False
        self.start()

    def wrote(self, rows: int) -> None:
        self._pending += rows  # racy by design: an approximate count only shifts the timing
        if self._pending >= self._every_rows:
            self._wake.set()

    def run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._interval)
            self._wake.clear()
            if self._pending and not self._stopping:
                self._pending = 0
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self.join()
