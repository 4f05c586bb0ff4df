"""Opt-in durable store of accepted-but-unacknowledged messages: an append-only segment log.

``track()`` copies each message into the log before it returns. The active log is a file
mapped into memory (``mmap``, shared), so the copy lands in the kernel's page cache with no
system call: once the call has returned, the message survives ``kill -9`` of the process, as
after a ``write()``. A ``write()`` costs a system call and gives up the GIL, and a consumer
waiting for the GIL then takes it in the middle of the caller's ``track()``; the copy does
neither. Each log's blocks are reserved when it starts (``posix_fallocate``), because writing
to a mapped page the disk cannot hold kills the process with SIGBUS instead of failing.
When its batch is finished (acknowledged by the server, or reported through ``on_error``) the
consumer appends the messages' offsets to an acknowledgement log, one ``write()`` per batch. A
segment whose every message is acknowledged is deleted. What a crashed or exited process leaves
behind is replayed by the next client that opens the same ``spool_path``. A message the server
acknowledged just before the crash, whose acknowledgement was not yet written, is sent again.

Layout of ``spool_path`` (a directory)::

    <owner>/lock     held with flock while the owner's process lives
    <owner>/<n>.log  messages, each one line of JSON; zero bytes after the last line
    <owner>/<n>.ack  offsets (8 bytes each) of the lines of <n>.log that are finished

The kernel releases an owner's lock when its process dies, even on ``kill -9``. A client that
can lock a dead owner's ``lock`` adopts the owner: it keeps the lock, replays the unfinished
lines, and acknowledges them in the owner's own ack logs. Two live processes sharing one
``spool_path`` therefore never send the same message twice. (POSIX only: ``fcntl`` is
required.) Power loss or an OS crash can lose what the kernel had not yet written to disk.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import sqlite3
import struct
import threading
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
SEGMENT_BYTES = 8 << 20
"""The size of a segment log, reserved when it starts; once full it is closed for writing (cut
to its lines), and it is deleted once all its lines are acknowledged."""
_ZEROS = 1 << 20
_NEWLINE = b"\n"  # JSON text never holds a raw newline, so a message is one line
_OFFSET = struct.Struct("<Q")


class SpoolFull(Exception):
    """The spool holds ``max_bytes`` already, or the disk refused the write."""


class _Segment:
    """One ``<n>.log`` and its ``<n>.ack``, with the count of lines not yet finished."""

    def __init__(self, log: Path, sealed: bool = True) -> None:
        self.log = log
        self.ack = log.with_suffix(".ack")
        self.unfinished = 0
        self.sealed = sealed
        """No more lines will be written to it: it can go once ``unfinished`` is zero."""

    def acknowledge(self, offsets: list[int]) -> None:
        """One append per batch (opened and closed each time: batches are few)."""
        fd = os.open(self.ack, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, b"".join(map(_OFFSET.pack, offsets)))
        finally:
            os.close(fd)
        self.unfinished -= len(offsets)

    def delete(self) -> None:
        self.log.unlink(missing_ok=True)
        self.ack.unlink(missing_ok=True)


class Spool:
    """One client's handle on a spool directory; thread-safe."""

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 1:
            raise ValueError(f"spool_max_bytes must be at least 1, got: {max_bytes!r}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        earlier = _move_aside_sqlite_spool(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        if earlier is not None:
            _import_sqlite_spool(earlier, self.path)
        self._open()

    def _open(self) -> None:
        """Become a new owner: a directory, its lock, and a first segment."""
        self._lock = threading.Lock()
        self._places: dict[int, tuple[_Segment, int, int]] = {}
        """(segment, offset, size) of each live message, by ``id()`` of its bytes: the same
        object travels from ``add`` through the queue to ``remove``, alive all that way."""
        self._size = 0
        self.owner = f"{os.getpid()}-{os.urandom(6).hex()}"
        self._dir = self.path / self.owner
        self._dir.mkdir()
        self._fds = [_lock(self._dir / "lock")]
        """The locks held (this owner's and adopted owners') and, last, the active log."""
        self._release = weakref.finalize(self, _close_all, self._fds)
        self._segments = 0
        self._map: mmap.mmap | None = None
        """The active log, mapped; None until it starts (or when starting it failed)."""
        self._log_end = 0
        self._next_segment()

    def _next_segment(self) -> None:
        """Seal the active log, if any, and start a new one."""
        if self._map is not None:
            self._seal_active()
        self._segments += 1
        log = self._dir / f"{self._segments}.log"
        fd = os.open(log, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _reserve(fd, SEGMENT_BYTES)
            mapping = mmap.mmap(fd, SEGMENT_BYTES)
        except OSError:
            os.close(fd)
            log.unlink(missing_ok=True)
            raise
        self._fds.append(fd)
        self._active = _Segment(log, sealed=False)
        self._map = mapping
        self._log_end = 0

    @property
    def size(self) -> int:
        """Bytes of messages in the spool that are not yet finished."""
        return self._size

    def add(self, data: bytes) -> None:
        """Write ``data`` before the caller returns; raise ``SpoolFull`` past ``max_bytes``,
        or when the disk has no room for a new segment."""
        with self._lock:
            if self._size + len(data) > self.max_bytes:
                raise SpoolFull(f"spool holds {self._size} bytes (max {self.max_bytes})")
            start = self._log_end
            end = start + len(data)
            if self._map is None or end >= SEGMENT_BYTES:
                if len(data) >= SEGMENT_BYTES:
                    raise SpoolFull(f"a message of {len(data)} bytes exceeds a spool segment")
                try:
                    self._next_segment()
                except OSError as e:
                    raise SpoolFull(f"cannot start a spool segment: {e}") from e
                start, end = 0, len(data)
            assert self._map is not None
            self._map[start:end] = data
            self._map[end] = _NEWLINE[0]  # last: a line without its newline is not a message
            segment = self._active
            self._places[id(data)] = (segment, start, len(data))
            segment.unfinished += 1
            self._log_end = end + 1
            self._size += len(data)

    def remove(self, batch: Sequence[bytes]) -> None:
        """Acknowledge messages whose fate is decided (delivered or reported)."""
        with self._lock:
            finished: dict[_Segment, list[int]] = {}
            for data in batch:
                place = self._places.pop(id(data), None)
                if place is not None:
                    segment, offset, size = place
                    finished.setdefault(segment, []).append(offset)
                    self._size -= size
            for segment, offsets in finished.items():
                segment.acknowledge(offsets)
                if segment.sealed and not segment.unfinished:
                    segment.delete()

    def adopt_orphans(self) -> list[bytes]:
        """Take over the segments of owners that are no longer alive, and return their
        unfinished messages, oldest first. From then on they are this client's to finish."""
        with self._lock:
            orphans: list[bytes] = []
            for owner in sorted(self.path.iterdir(), key=_age):
                if owner == self._dir or not owner.is_dir():
                    continue
                try:
                    fd = _lock(owner / "lock")
                except BlockingIOError:
                    continue  # its process is alive
                found = list(self._adopt(owner))
                if found:
                    self._fds.insert(0, fd)  # held until this client is done with them
                    orphans += found
                else:
                    _remove_owner(owner, fd)
            return orphans

    def _adopt(self, owner: Path) -> Iterator[bytes]:
        for log in sorted(owner.glob("*.log"), key=lambda p: int(p.stem)):
            segment = _Segment(log)
            acknowledged = _acknowledged(segment.ack)
            for offset, data in _lines(log):
                if offset not in acknowledged:
                    self._places[id(data)] = (segment, offset, len(data))
                    segment.unfinished += 1
                    self._size += len(data)
                    yield data
            if not segment.unfinished:
                segment.delete()

    def _seal_active(self) -> None:
        self._close_active()
        self._active.sealed = True
        if not self._active.unfinished:
            self._active.delete()

    def _close_active(self) -> None:
        """Unmap the active log and cut it to its lines, giving back the rest of its space."""
        assert self._map is not None
        self._map.close()
        self._map = None
        fd = self._fds.pop()
        os.ftruncate(fd, self._log_end)
        os.close(fd)

    def reopen_after_fork(self) -> None:
        """In a forked child: a new owner; the parent's messages stay the parent's.

        The inherited descriptors and mapping are closed in the child only (the parent's log is
        not cut: the parent still writes to it); the locks stay held through the parent's own
        descriptors."""
        if self._map is not None:
            self._map.close()
        self._release()
        self._open()

    def close(self) -> None:
        """Release the spool; unfinished messages stay for the next client to adopt."""
        with self._lock:
            if self._map is not None:
                self._close_active()
            self._release()


def _lock(path: Path) -> int:
    """An exclusive flock on ``path``, or ``BlockingIOError`` if a live process holds it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def _reserve(fd: int, size: int) -> None:
    """Allocate the first ``size`` bytes of ``fd``'s file on disk now, as zeros."""
    if hasattr(os, "posix_fallocate"):
        os.posix_fallocate(fd, 0, size)
        return
    zeros = bytes(min(size, _ZEROS))  # macOS: no posix_fallocate; write the zeros
    for offset in range(0, size, len(zeros)):
        os.pwrite(fd, zeros[: size - offset], offset)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)
    fds.clear()


def _age(owner: Path) -> float:
    try:
        return (owner / "lock").stat().st_mtime
    except OSError:
        return 0.0


def _acknowledged(ack: Path) -> set[int]:
    try:
        raw = ack.read_bytes()
    except FileNotFoundError:
        return set()
    whole = len(raw) - len(raw) % _OFFSET.size  # a write cut short by a crash
    return {offset for (offset,) in _OFFSET.iter_unpack(raw[:whole])}


def _lines(log: Path) -> Iterator[tuple[int, bytes]]:
    """``(offset, message)`` for each complete line; a last line cut short is not a message,
    and the reserved zeros after the last line are none (JSON text holds no zero byte)."""
    raw = log.read_bytes()
    written = raw.find(b"\0")
    if written >= 0:
        raw = raw[:written]
    offset = 0
    while True:
        end = raw.find(_NEWLINE, offset)
        if end < 0:
            return
        yield offset, raw[offset:end]
        offset = end + 1


def _remove_owner(owner: Path, lock_fd: int) -> None:
    for leftover in owner.iterdir():
        leftover.unlink(missing_ok=True)
    owner.rmdir()
    os.close(lock_fd)


def _import_sqlite_spool(old: Path, into: Path) -> None:
    """Write an earlier release's SQLite spool as the log of an owner nobody holds, so that
    ``adopt_orphans`` replays it like any dead owner's, then delete the SQLite file."""
    db = sqlite3.connect(old)
    try:
        rows = db.execute("SELECT data FROM messages ORDER BY id").fetchall()
    finally:
        db.close()
    owner = into / f"imported-{os.urandom(6).hex()}"
    owner.mkdir()
    (owner / "1.log").write_bytes(b"".join(bytes(data) + _NEWLINE for (data,) in rows))
    (owner / "lock").touch()
    for leftover in (old, Path(f"{old}-wal"), Path(f"{old}-shm")):
        leftover.unlink(missing_ok=True)


def _move_aside_sqlite_spool(path: Path) -> Path | None:
    """An earlier release kept the spool in one SQLite file at ``spool_path``: move it aside
    (atomically, so one process imports it) for ``Spool`` to import."""
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise ValueError(f"spool_path {str(path)!r} is a file; it must name a directory")
    aside = path.with_name(f"{path.name}.sqlite-{os.urandom(4).hex()}")
    try:
        path.rename(aside)
    except FileNotFoundError:
        return None  # another process moved it first and imports it
    return aside
