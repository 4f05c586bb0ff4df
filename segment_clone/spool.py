"""Opt-in durable store of accepted-but-unacknowledged messages (SQLite in WAL mode).

A message is committed to the spool before ``track()`` returns and deleted once its batch is
finished (acknowledged by the server, or reported through ``on_error``). What a crashed or
exited process leaves behind is replayed by the next client that opens the same file.

Each live client owns its rows through an owner token and holds an exclusive ``flock`` on a
lock file named after that token. The kernel releases the lock when the process dies, even
on ``kill -9``, so another client can tell abandoned rows from rows a live process is still
sending, and take them over in one SQLite write transaction: two processes sharing one file
never send the same message twice. (POSIX only: ``fcntl`` is required.)
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path

DEFAULT_MAX_BYTES = 100 * 1024 * 1024

_inherited: list[sqlite3.Connection] = []

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_owner ON messages (owner);
"""


class SpoolFull(Exception):
    """The spool holds ``max_bytes`` already; the message was not accepted."""


class Spool:
    """One client's handle on a spool file; thread-safe."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"spool_max_bytes must be at least 1, got: {max_bytes!r}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._owners_dir = self.path.with_name(self.path.name + ".owners")
        self._open()

    def _open(self) -> None:
        self._lock = threading.Lock()
        self._owners_dir.mkdir(parents=True, exist_ok=True)
        self.owner = f"{os.getpid()}-{os.urandom(6).hex()}"
        lock_path = self._owners_dir / f"{self.owner}.lock"
        self._owner_fd = os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o600)
        fcntl.flock(self._owner_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self._release = weakref.finalize(self, _release, self._db, self._owner_fd, lock_path)
        self._release.atexit = False  # process exit releases both; no ordering with atexit
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._ids: dict[bytes, list[int]] = {}
        self._size = self._stored_bytes()

    def _stored_bytes(self) -> int:
        (size,) = self._db.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM messages").fetchone()
        return int(size)

    @property
    def size(self) -> int:
        """Bytes of message data in the file, as this process last saw it."""
        return self._size

    def add(self, data: bytes) -> None:
        """Commit ``data`` before the caller returns; raise ``SpoolFull`` past ``max_bytes``."""
        with self._lock:
            if self._size + len(data) > self.max_bytes:
                raise SpoolFull(f"spool holds {self._size} bytes (max {self.max_bytes})")
            row = self._db.execute(
                "INSERT INTO messages (owner, data) VALUES (?, ?)", (self.owner, data)
            ).lastrowid
            assert row is not None
            self._ids.setdefault(data, []).append(row)
            self._size += len(data)

    def remove(self, batch: Sequence[bytes]) -> None:
        """Forget messages whose fate is decided (delivered or reported)."""
        with self._lock:
            rows = []
            for data in batch:
                ids = self._ids.get(data)
                if ids:
                    rows.append((ids.pop(),))
                    if not ids:
                        del self._ids[data]
                    self._size -= len(data)
            self._db.executemany("DELETE FROM messages WHERE id = ?", rows)

    def adopt_orphans(self) -> list[bytes]:
        """Take over the rows of owners that are no longer alive, and return their data.

        Owners are read before their lock files are checked: a live owner locks its file
        before it writes its first row, so a row can never be seen without its lock.
        Adopted rows are returned oldest first and are from then on this client's own, so a
        crash during their replay leaves them for the next client in turn.
        """
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT owner FROM messages")
            owners = {owner for (owner,) in rows}
            owners.discard(self.owner)
            for owner in owners:
                if self._is_gone(owner):
                    self._db.execute(
                        "UPDATE messages SET owner = ? WHERE owner = ?", (self.owner, owner)
                    )
            for lock_file in self._owners_dir.glob("*.lock"):  # tidy up dead owners' files
                if lock_file.stem not in owners and lock_file.stem != self.owner:
                    self._is_gone(lock_file.stem)
            known = {row for ids in self._ids.values() for row in ids}
            orphans = []
            for row, data in self._db.execute(
                "SELECT id, data FROM messages WHERE owner = ? ORDER BY id", (self.owner,)
            ):
                if row not in known:
                    self._ids.setdefault(data, []).append(row)
                    orphans.append(data)
            self._size = self._stored_bytes()
            return orphans

    def _is_gone(self, owner: str) -> bool:
        """True if ``owner``'s process is dead: its lock file is missing or can be locked."""
        lock_file = self._owners_dir / f"{owner}.lock"
        try:
            handle = open(lock_file, "ab")  # noqa: SIM115 (closed below)
        except FileNotFoundError:
            return True
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            lock_file.unlink(missing_ok=True)
            return True

    def reopen_after_fork(self) -> None:
        """In a forked child: a new connection and owner; the parent's rows stay the parent's.

        The inherited connection is kept referenced but never used or closed: SQLite forbids
        using a connection across fork, and closing it could checkpoint the parent's WAL.
        """
        self._release.detach()
        _inherited.append(self._db)
        os.close(self._owner_fd)  # the parent's lock stays held through the parent's descriptor
        self._open()

    def close(self) -> None:
        """Release the file; rows still here are left for the next client to adopt."""
        with self._lock:
            self._release()


def _release(db: sqlite3.Connection, owner_fd: int, lock_path: Path) -> None:
    db.close()
    lock_path.unlink(missing_ok=True)
    os.close(owner_fd)
