"""The collector's SQLite event store: one row per message, deduplicated, in WAL mode.

One writer connection, used under a lock, inserts each request's messages with a single
``executemany`` in one transaction, so a request is stored whole or not at all, and a message
whose ``(source, dedup_key)`` is already there is counted as a duplicate (on its row, and per
source) instead of being stored twice. Readers use their own connections, which WAL lets run
while the writer writes.

Every request to an event API is logged in ``requests`` (endpoint, status, gzip, batch size,
injected fault), accepted or not: its events point at it, which is what the debugger's Delivery
tab shows, and refused ones are counted by status. The messages of a request failed by fault
injection are remembered by key in ``faulted``, so that the event that a retry stored shows the
faults it went through.

The unique index is on a 64-bit hash of ``(source, dedup_key)`` rather than on the text: random
UUID keys dirty one index page per message, and an integer index has about a third as many
pages as a text one, which made storing a batch some 40 % cheaper. A hash collision is detected and
the message is stored all the same (see ``_store_collisions``). The high half of the hash of a
message with an ``$insert_id`` is that id's, which is how a Segment message and the Mixpanel
events made from it find each other (``linked``) without an index of their own.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, NamedTuple, Union

import orjson

from .links import link_key

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
    body TEXT NOT NULL,
    anonymous_id TEXT,
    request_id INTEGER,
    violations TEXT,
    dup_hits INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS events_unhashed ON events (source, dedup_key)
    WHERE dedup_hash IS NULL;
CREATE TABLE IF NOT EXISTS duplicates (
    source TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    source TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    status INTEGER NOT NULL,
    gzip INTEGER NOT NULL,
    messages INTEGER,
    fault TEXT,
    retry INTEGER
);
CREATE TABLE IF NOT EXISTS faulted (
    dedup_hash INTEGER NOT NULL,
    request_id INTEGER NOT NULL,
    source TEXT,
    dedup_key TEXT
);
CREATE INDEX IF NOT EXISTS faulted_hash ON faulted (dedup_hash);
"""
ADDED_COLUMNS = {
    "events": {
        "anonymous_id": "TEXT",
        "request_id": "INTEGER",
        "violations": "TEXT",
        "dup_hits": "INTEGER NOT NULL DEFAULT 0",
    },
    "faulted": {"source": "TEXT", "dedup_key": "TEXT"},
}
"""Columns that databases written by earlier versions lack, by table; added on open."""
LINKED_VERSION = 1
"""``PRAGMA user_version`` from which messages are hashed with their ``$insert_id`` (see
``dedup_hash``); an older database is rehashed when opened."""
LINKED = (
    "SELECT {columns} FROM events WHERE dedup_hash BETWEEN ? AND ? AND source = ?"
    " UNION ALL SELECT {columns} FROM events WHERE dedup_hash IS NULL AND source = ? ORDER BY id"
)
"""The messages of one source that may have an ``$insert_id``: its range of the dedup index,
and the few stored without a hash; the caller checks which have it."""
MAX_LINKS = 20
"""Linked entries listed at most (the same ``$insert_id`` may be imported many times)."""
INSERT = (
    "INSERT INTO events (source, type, dedup_hash, dedup_key, user_id, event, received_at, body,"
    " anonymous_id, request_id, violations) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (dedup_hash) DO UPDATE SET dup_hits = dup_hits + 1"
    " WHERE dedup_key = excluded.dedup_key"
)
"""A duplicate counts a hit on the stored row; a hash collision (another key) changes nothing
and is stored by ``_store_collisions``; any other constraint fails."""
INSERT_REQUEST = (
    "INSERT INTO requests (received_at, source, endpoint, status, gzip, messages, fault, retry)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
ENTRY_COLUMNS = (
    "id, source, type, received_at, event, user_id, anonymous_id, violations, body, request_id,"
    " dup_hits, dedup_key"
)
SQL_VARIABLES = 500
MAX_READERS = 8
"""Reader connections at most: each holds file descriptors and a page cache, and 200 waiting
requests once opened 200 of them, kept for good. A query beyond waits for a free one."""
"""Placeholders per ``IN (...)`` query, under every SQLite build's limit."""

StrPath = Union[str, Path]


class Row(NamedTuple):
    """One message to store. ``dedup_key`` is the Segment messageId (Mixpanel: $insert_id)."""

    type: str
    dedup_key: str
    user_id: str | None
    event: str | None
    body: str
    anonymous_id: str | None = None
    violations: str | None = None
    """The tracking plan's violations as a JSON list, None when the message passed (or there
    is no plan)."""
    link_key: str | None = None
    """The ``$insert_id`` shared by a Segment message and the Mixpanel events made from it
    (see ``links``); None for a record that has none."""


@dataclass(frozen=True)
class Delivery:
    """How one request to an event API arrived and was answered."""

    source: str
    endpoint: str
    gzip: bool
    status: int = 200
    messages: int | None = None
    """Messages in the request; None when it was refused before they were read."""
    fault: str | None = None
    """The fault injected into this request, in words (``status 503``, ``delay 250 ms``)."""
    retry: int | None = None
    """The client's ``X-Retry-Count``: how many times it had sent this request before."""

    def params(self, now: float) -> tuple[Any, ...]:
        return (now, self.source, self.endpoint, self.status, int(self.gzip), self.messages,
                self.fault, self.retry)  # fmt: skip


@dataclass(frozen=True)
class Query:
    """Filters shared by ``/api/events``, the debugger, ``segment-clone events`` and the test
    fixtures. Each one given narrows the match; ``None`` means any."""

    type: str | None = None
    user_id: str | None = None
    event: str | None = None
    source: str | None = None
    limit: int | None = None
    """The most recent ``limit`` matches (still returned oldest first); None means all."""
    q: str | None = None
    """Free text, anywhere in the stored JSON (case-insensitive for ASCII)."""
    user: str | None = None
    """The userId or anonymousId (Mixpanel: distinct_id)."""
    valid: bool | None = None
    """True: messages that passed the tracking plan; False: those that broke it."""
    after: int | None = None
    before: int | None = None
    """Only messages stored after (before) the one with this ``id``, the arrival number."""

    def where(self, table: str = "") -> tuple[str, list[Any]]:
        """The SQL ``WHERE`` clause (empty without filters) and its parameters; ``table`` is
        the alias to qualify columns with, when the query joins another table."""
        t = f"{table}." if table else ""
        clauses, params = [], []
        for column in ("type", "user_id", "event", "source"):
            value = getattr(self, column)
            if value is not None:
                clauses.append(f"{t}{column} = ?")
                params.append(value)
        if self.q is not None:
            clauses.append(f"{t}body LIKE ? ESCAPE '\\'")
            params.append("%" + _like_escape(self.q) + "%")
        if self.user is not None:
            clauses.append(f"({t}user_id = ? OR {t}anonymous_id = ?)")
            params += [self.user, self.user]
        if self.valid is not None:
            clauses.append(f"{t}violations IS {'' if self.valid else 'NOT '}NULL")
        for bound, op in ((self.after, ">"), (self.before, "<")):
            if bound is not None:
                clauses.append(f"{t}id {op} ?")
                params.append(bound)
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


class Entry(NamedTuple):
    """A stored message as the debugger lists it: arrival number, metadata, raw JSON."""

    id: int
    source: str
    type: str
    received_at: float
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    violations: str | None
    body: str
    request_id: int | None
    dup_hits: int
    dedup_key: str


class EventStore:
    """Thread-safe access to one SQLite database file; reopening the file keeps everything.

    ``on_write(stored)`` is called after each committed write with the number of messages it
    stored (0 for a write that stored none, such as a refused request or a reset).
    """

    def __init__(self, path: StrPath, on_write: Callable[[int], None] | None = None) -> None:
        self.path = str(path)
        self._on_write = on_write
        self._lock = threading.Lock()
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._reader_slots = threading.BoundedSemaphore(MAX_READERS)
        self._all: list[sqlite3.Connection] = []
        self._closed = False
        self._writer = self._connect()
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._writer.execute("PRAGMA wal_autocheckpoint=0")
        self._writer.executescript(SCHEMA)
        _add_missing_columns(self._writer)
        (version,) = self._writer.execute("PRAGMA user_version").fetchone()
        if version < LINKED_VERSION:
            _hash_with_links(self._writer)
        self._checkpointer = Checkpointer(self._connect())

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        self._all.append(conn)
        return conn

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer, in a transaction that commits on success and rolls back on any error."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the event store is closed")
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def _wrote(self, rows: int, stored: int) -> None:
        self._checkpointer.wrote(rows)
        if self._on_write is not None:
            self._on_write(stored)

    def add(
        self, source: str, rows: Sequence[Row], delivery: Delivery | None = None
    ) -> tuple[int, int]:
        """Store ``rows`` (and the request that brought them, if given) in one transaction;
        returns ``(stored, duplicates)``."""
        now = time.time()
        with self._transaction() as conn:
            request_id = None
            if delivery is not None:
                request_id = conn.execute(INSERT_REQUEST, delivery.params(now)).lastrowid
            params = [
                (source, r.type, dedup_hash(source, r.dedup_key, r.link_key), r.dedup_key,
                 r.user_id, r.event, now, r.body, r.anonymous_id, request_id, r.violations)
                for r in rows
            ]  # fmt: skip
            (last_id,) = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
            conn.executemany(INSERT, params)
            (stored,) = conn.execute(
                "SELECT count(*) FROM events WHERE id > ?", (last_id,)
            ).fetchone()
            if stored < len(params):
                stored += _store_collisions(conn, params)
            duplicates = len(params) - stored
            if duplicates:
                conn.execute(
                    "INSERT INTO duplicates (source, count) VALUES (?, ?)"
                    " ON CONFLICT (source) DO UPDATE SET count = count + excluded.count",
                    (source, duplicates),
                )
        self._wrote(len(params), stored)
        return stored, duplicates

    def log_refused(self, delivery: Delivery, faulted_keys: Sequence[str] = ()) -> None:
        """Log a request that stored nothing; ``faulted_keys`` are the dedup keys of the
        messages in it when it was failed by fault injection."""
        with self._transaction() as conn:
            request_id = conn.execute(INSERT_REQUEST, delivery.params(time.time())).lastrowid
            conn.executemany(
                "INSERT INTO faulted (dedup_hash, request_id, source, dedup_key)"
                " VALUES (?, ?, ?, ?)",
                [
                    (dedup_hash(delivery.source, key), request_id, delivery.source, key)
                    for key in faulted_keys
                ],
            )
        self._wrote(1, 0)

    def reset(self) -> None:
        """Forget every message, request and count."""
        with self._transaction() as conn:
            for table in ("events", "duplicates", "requests", "faulted"):
                conn.execute(f"DELETE FROM {table}")
        self._wrote(0, 0)

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        with self._reader_slots:
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

    def entries(
        self, query: Query, limit: int | None = None, oldest_first: bool = False
    ) -> list[Entry]:
        """Up to ``limit`` matches (all if None), newest first, or the oldest ones first."""
        where, params = query.where()
        order = "" if oldest_first else " DESC"
        sql = f"SELECT {ENTRY_COLUMNS} FROM events{where} ORDER BY id{order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._reader() as conn:
            return [Entry(*row) for row in conn.execute(sql, params).fetchall()]

    def entry(self, id_: int) -> tuple[Entry, dict[str, Any]] | None:
        """One message by arrival number, with its delivery: the request that stored it and
        the requests that fault injection failed before."""
        with self._reader() as conn:
            row = conn.execute(f"SELECT {ENTRY_COLUMNS} FROM events WHERE id = ?", (id_,))
            found = row.fetchone()
            if found is None:
                return None
            entry = Entry(*found)
            request = conn.execute(
                "SELECT endpoint, status, gzip, messages, fault, retry FROM requests WHERE id = ?",
                (entry.request_id,),
            ).fetchone()
            faults = conn.execute(
                "SELECT r.received_at, r.endpoint, r.status, r.fault FROM faulted f"
                " JOIN requests r ON r.id = f.request_id WHERE f.dedup_hash = ?"
                " AND f.source = ? AND f.dedup_key = ? ORDER BY r.id",
                (dedup_hash(entry.source, entry.dedup_key), entry.source, entry.dedup_key),
            ).fetchall()
        delivery: dict[str, Any] = dict.fromkeys(
            ("endpoint", "status", "gzip", "batch_size", "fault", "retry")
        )
        if request is not None:
            endpoint, status, gzip, messages, fault, retry = request
            delivery.update(endpoint=endpoint, status=status, gzip=bool(gzip),
                            batch_size=messages, fault=fault, retry=retry)  # fmt: skip
        delivery["duplicates"] = entry.dup_hits
        delivery["faulted_attempts"] = [
            {"at": iso_time(at), "endpoint": endpoint, "status": status, "fault": fault}
            for at, endpoint, status, fault in faults
        ]
        return entry, delivery

    def linked(self, entry: Entry) -> list[Entry]:
        """The other side of ``entry``, by ``$insert_id``: the Mixpanel events made from a
        Segment message, or the Segment message a Mixpanel event was made from; oldest first,
        ``MAX_LINKS`` at most.

        The messages of one ``$insert_id`` share the high half of their dedup hash, so they
        are one range of the unique index; those stored with no hash (a collision) are few."""
        key = link_key(entry.source, orjson.loads(entry.body))
        if key is None:
            return []
        other = "mixpanel" if entry.source == "segment" else "segment"
        sql = LINKED.format(columns=ENTRY_COLUMNS)
        with self._reader() as conn:
            found = conn.execute(sql, (*link_range(key), other, other)).fetchall()
        linked = (Entry(*row) for row in found)
        return [e for e in linked if link_key(other, orjson.loads(e.body)) == key][:MAX_LINKS]

    def violation_groups(self, query: Query = Query()) -> list[dict[str, Any]]:
        """The violations of matching messages, grouped by event (or type), violation type,
        field and message, most frequent first."""
        where, params = replace(query, valid=False).where("e")
        sql = (
            "SELECT coalesce(e.event, e.type), json_extract(v.value, '$.type'),"
            " json_extract(v.value, '$.field'), json_extract(v.value, '$.message'),"
            " count(*), max(e.received_at)"
            f" FROM events e, json_each(e.violations) v{where}"
            " GROUP BY 1, 2, 3, 4 ORDER BY 5 DESC, 6 DESC"
        )
        with self._reader() as conn:
            groups = conn.execute(sql, params).fetchall()
        return [
            {"event": event, "type": type_, "field": field, "message": message, "count": count,
             "last_seen": iso_time(last)}
            for event, type_, field, message, count, last in groups
        ]  # fmt: skip

    def stats(self) -> dict[str, Any]:
        """Counts by source and type, duplicates refused, messages that broke the plan and
        requests refused by status, since the file was created (or last reset)."""
        with self._reader() as conn:
            counts = conn.execute(
                "SELECT source, type, COUNT(*) FROM events GROUP BY source, type ORDER BY 1, 2"
            ).fetchall()
            dups = dict(conn.execute("SELECT source, count FROM duplicates").fetchall())
            (invalid,) = conn.execute(
                "SELECT COUNT(*) FROM events WHERE violations IS NOT NULL"
            ).fetchone()
            rejected = conn.execute(
                "SELECT status, COUNT(*) FROM requests WHERE status >= 300 AND fault IS NULL"
                " GROUP BY status ORDER BY status"
            ).fetchall()
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
            "invalid": invalid,
            "rejected": {str(status): n for status, n in rejected},
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


def iso_time(seconds: float) -> str:
    """A stored time as ISO 8601 UTC with milliseconds, as the APIs show it."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{int(seconds * 1000) % 1000:03d}Z"


def dedup_hash(source: str, key: str, link: str | None = None) -> int:
    """A signed 64-bit hash of ``(source, key)``, the store's unique index.

    CRC-32 and Adler-32 side by side: stable across processes (unlike ``hash()``) and about
    three times cheaper than a hashlib digest. Not cryptographic, and it need not be: a
    collision costs one extra query, never a message. With ``link``, the message's
    ``$insert_id``, its CRC-32 is the high half instead (and that of ``(source, key)`` the low
    one): the messages of one ``$insert_id``, Segment's and Mixpanel's, are then one range of
    the index (``link_range``), and links need no index of their own.
    """
    data = f"{source}\0{key}".encode()
    if link is None:
        return (zlib.crc32(data) << 32 | zlib.adler32(data)) - (1 << 63)
    return (zlib.crc32(link.encode()) << 32 | zlib.crc32(data)) - (1 << 63)


def link_range(link: str) -> tuple[int, int]:
    """The lowest and highest dedup hash a message of ``$insert_id`` ``link`` can have."""
    lowest = (zlib.crc32(link.encode()) << 32) - (1 << 63)
    return lowest, lowest + 0xFFFFFFFF


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, columns in ADDED_COLUMNS.items():
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for column, declaration in columns.items():
            if column not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _hash_with_links(conn: sqlite3.Connection) -> None:
    """Rehash the messages of a database from before ``LINKED_VERSION`` with their
    ``$insert_id``, in one transaction, a thousand rows read at a time. A hash already taken
    (a collision, about 2**-64 a pair) leaves the row's old one: it only goes unlinked."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DROP INDEX IF EXISTS events_link")  # a link index main had for an hour
        last = 0
        while rows := conn.execute(
            "SELECT id, source, dedup_key, body FROM events WHERE id > ?"
            " AND dedup_hash IS NOT NULL ORDER BY id LIMIT 1000",
            (last,),
        ).fetchall():
            last = rows[-1][0]
            links = [
                (id_, source, key, _stored_link_key(source, body))
                for id_, source, key, body in rows
            ]
            conn.executemany(
                "UPDATE OR IGNORE events SET dedup_hash = ? WHERE id = ?",
                [(dedup_hash(s, k, link), id_) for id_, s, k, link in links if link is not None],
            )
        conn.execute(f"PRAGMA user_version = {LINKED_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _stored_link_key(source: str, body: str) -> str | None:
    message = orjson.loads(body)
    return link_key(source, message) if isinstance(message, dict) else None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


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
        counted = conn.execute(
            "UPDATE events SET dup_hits = dup_hits + 1"
            " WHERE dedup_hash IS NULL AND source = ? AND dedup_key = ?",
            (source, key),
        ).rowcount
        if not counted:
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
