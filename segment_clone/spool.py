"""Opt-in durable store of accepted-but-unacknowledged messages: an append-only segment log.

``track()`` copies each message into the log before it returns. The active log is a file
mapped into memory (``mmap``, shared), so the copy lands in the kernel's page cache with no
system call: once the call has returned, the message survives ``kill -9`` of the process, as
after a ``write()``. A ``write()`` costs a system call and gives up the GIL, and a consumer
waiting for the GIL then takes it in the middle of the caller's ``track()``; the copy does
neither. Each log's blocks are reserved when it starts (``posix_fallocate``), because writing
to a mapped page the disk cannot hold kills the process with SIGBUS instead of failing.
Nothing is created before the first message: a process (a forked child) that never tracks
reserves nothing.
When its batch is finished (acknowledged by the server, or reported through ``on_error``) the
consumer appends the messages' offsets to an acknowledgement log, one ``write()`` per batch;
an acknowledgement the disk refuses is written with the next batch's, and never holds up the
batch. A segment whose every message is acknowledged is deleted. What a crashed or exited
process leaves behind is replayed by the next client that opens the same ``spool_path``. A
message the server acknowledged just before the crash, whose acknowledgement was not yet
written, is sent again. A directory removed under a running client is made again and every
unfinished message written to it again; if it cannot be made, the spool keeps to memory.

Layout of ``spool_path`` (a directory)::

    <owner>/lock     held with flock while the owner's process lives
    <owner>/<n>.log  messages, each one line of JSON; zero bytes after the last line
    <owner>/<n>.ack  offsets (8 bytes each) of the lines of <n>.log that are finished

The kernel releases an owner's lock when its process dies, even on ``kill -9``. A client that
can lock a dead owner's ``lock`` adopts the owner: it keeps the lock, replays the unfinished
lines, acknowledges them in the owner's own ack logs, and removes the owner once they are all
finished. Two live processes sharing one ``spool_path`` therefore never send the same message
twice. (POSIX only: ``fcntl`` is required.) Power loss or an OS crash can lose what the kernel
had not yet written to disk.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import shutil
import sqlite3
import struct
import threading
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

DEFAULT_MAX_BYTES = 100 * 1024 * 1024
SEGMENT_BYTES = 8 << 20
"""The size of a segment log, reserved when it starts; once full it is closed for writing (cut
to its lines), and it is deleted once all its lines are acknowledged."""
_ZEROS = 1 << 20
_NEWLINE = b"\n"  # JSON text never holds a raw newline, so a message is one line
_OFFSET = struct.Struct("<Q")
_log = logging.getLogger("segment")
_T = TypeVar("_T")
_GONE = (FileNotFoundError, NotADirectoryError)
"""What opening a file in the spool raises once its directory was removed (or replaced)."""


class SpoolFull(Exception):
    """The spool holds ``max_bytes`` already, or the disk refused the write."""


class _Owner:
    """A directory of segments and the ``flock`` that makes it ours: this process's own, or a
    dead process's that we adopted. Guarded by its ``Spool``'s lock, as ``_Segment`` is."""

    def __init__(self, path: Path, lock_fd: int) -> None:
        self.path = path
        self.lock_fd = lock_fd
        self.segments = 0
        """Its segments not yet deleted: an adopted owner is removed when none is left."""


class _Segment:
    """One ``<n>.log`` and its ``<n>.ack``, with the count of lines not yet finished."""

    def __init__(self, log: Path, owner: _Owner, sealed: bool = True) -> None:
        self.log = log
        self.ack = log.with_suffix(".ack")
        self.owner = owner
        owner.segments += 1
        self.unfinished = 0
        self.sealed = sealed
        """No more lines will be written to it: it can go once ``unfinished`` is zero."""
        self.owed = b""
        """Acknowledgements not yet written: the write failed, and is retried with the next."""

    def finish(self, offset: int) -> None:
        self.owed += _OFFSET.pack(offset)
        self.unfinished -= 1

    def settle(self) -> bool:
        """Write the owed acknowledgements (one append; opened and closed each time: batches
        are few), or delete the segment if it is done; True if deleted. Raises ``OSError``."""
        if self.sealed and not self.unfinished:
            self.log.unlink(missing_ok=True)
            self.ack.unlink(missing_ok=True)
            self.owed = b""
            return True
        if self.owed:
            fd = os.open(self.ack, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                while self.owed:  # a short write keeps the rest, whole offsets or not, owed
                    self.owed = self.owed[os.write(fd, self.owed) :]
            finally:
                os.close(fd)
        return False


class Spool:
    """One client's handle on a spool directory; thread-safe, and a signal handler may call
    ``add`` and ``remove`` while its thread is inside them."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        max_bytes: int = DEFAULT_MAX_BYTES,
        log: logging.Logger = _log,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"spool_max_bytes must be at least 1, got: {max_bytes!r}")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._logger = log
        earlier = _move_aside_sqlite_spool(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        if earlier is not None:
            _import_sqlite_spool(earlier, self.path)
        self._closed = False  # guarded by _lock, as is everything below
        self._reset()

    def _reset(self) -> None:
        """No owner, no message: the state of a new spool, and of one in a forked child."""
        self._lock = threading.RLock()
        """Guards every attribute below. Re-entrant, for a signal handler on a thread that
        holds it; ``_busy`` then defers the handler's call (``_guarded``)."""
        self._busy = False
        self._deferred: list[Callable[[], None]] = []
        """Calls made by signal handlers while their thread was inside ``add`` or ``remove``:
        run, in order, by that thread as soon as it is done."""
        self._places: dict[int, tuple[_Segment, int, bytes]] = {}
        """(segment, offset, message) of each live message, by ``id()`` of its bytes: the same
        object travels from ``add`` through the queue to ``remove``, alive all that way."""
        self._size = 0
        self._owed: set[_Segment] = set()
        """Segments whose acknowledgements (or deletion) failed, retried with the next batch."""
        self._failing: OSError | None = None
        """The last error writing acknowledgements, until one succeeds (warned once)."""
        self._in_memory = False
        """The directory could not be made again: messages are kept in memory only."""
        self._fds: list[int] = []
        """The descriptors held (owners' locks, the active log), closed when this spool is."""
        self._release = weakref.finalize(self, _close_all, self._fds)
        self._release.atexit = False  # the locks are held until the process is gone: at
        # interpreter exit the exit hook is still delivering, and acknowledging, after atexit
        self._owners: list[_Owner] = []
        """Owners whose segments we hold: ours (last, once the first message is added) and
        the adopted ones not yet finished."""
        self.owner: str | None = None
        """This process's owner directory's name; None until the first message."""
        self._segments = 0
        self._map: mmap.mmap | None = None
        """The active log, mapped; None until it starts (or when starting it failed)."""
        self._log_fd = -1
        self._active: _Segment | None = None
        self._log_end = 0

    @property
    def size(self) -> int:
        """Bytes of messages in the spool that are not yet finished (read without the lock:
        one int, at worst a moment old)."""
        return self._size

    def add(self, data: bytes) -> None:
        """Write ``data`` before the caller returns; raise ``SpoolFull`` past ``max_bytes``,
        when the disk has no room for a new segment, or once the spool is closed."""
        self._guarded(self._add, data)

    def remove(self, batch: Sequence[bytes]) -> None:
        """Acknowledge messages whose fate is decided (delivered or reported). Never raises
        for the disk: an acknowledgement that cannot be written is retried with the next."""
        self._guarded(self._remove, batch)

    def _guarded(self, call: Callable[[_T], None], arg: _T) -> None:
        """``call(arg)`` under the lock; deferred instead when a signal handler calls it on a
        thread that is inside the spool already (``add``, ``remove``, adoption or ``close``)."""
        with self._lock:
            if self._busy:
                self._deferred.append(partial(call, arg))
                return
            self._busy = True
            try:
                call(arg)
            finally:
                self._run_deferred()

    def _run_deferred(self) -> None:
        """Run the calls deferred by signal handlers, then clear ``_busy``: a handler that
        comes after the last look at ``_deferred`` finds ``_busy`` clear and runs its own."""
        while True:
            while self._deferred:
                call = self._deferred.pop(0)
                try:
                    call()
                except SpoolFull as e:  # its track() has returned: the message is queued
                    self._logger.warning("a message tracked by a signal handler: %s", e)
            self._busy = False
            if not self._deferred:
                return
            self._busy = True

    def unspooled(self, messages: Sequence[bytes]) -> list[bytes]:
        """Those of ``messages`` that the spool does not hold (to report them as lost)."""
        with self._lock:
            return [data for data in messages if id(data) not in self._places]

    def _add(self, data: bytes) -> None:
        if self._closed:
            raise SpoolFull("the spool is closed")
        if self._in_memory:
            return
        if self._size + len(data) > self.max_bytes:
            raise SpoolFull(f"spool holds {self._size} bytes (max {self.max_bytes})")
        if len(data) >= SEGMENT_BYTES:
            raise SpoolFull(f"a message of {len(data)} bytes exceeds a spool segment")
        try:
            self._write(data)
        except _GONE as e:
            self._rebuild(e, [data])
        except OSError as e:
            raise SpoolFull(f"cannot start a spool segment: {e}") from e

    def _write(self, data: bytes) -> None:
        start = self._log_end
        end = start + len(data)
        if self._map is None or end >= SEGMENT_BYTES:
            self._next_segment()
            start, end = 0, len(data)
        assert self._map is not None and self._active is not None
        self._map[start:end] = data
        self._map[end] = _NEWLINE[0]  # last: a line without its newline is not a message
        segment = self._active
        self._places[id(data)] = (segment, start, data)
        segment.unfinished += 1
        self._log_end = end + 1
        self._size += len(data)

    def _next_segment(self) -> None:
        """Seal the active log, if any, and start a new one (and this process's owner
        directory, at its first)."""
        if self._map is not None:
            self._seal_active()
        if self.owner is None:
            self._become_owner()
        own = self._owners[-1]
        self._segments += 1
        log = own.path / f"{self._segments}.log"
        fd = os.open(log, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _reserve(fd, SEGMENT_BYTES)
            mapping = mmap.mmap(fd, SEGMENT_BYTES)
        except OSError:
            os.close(fd)
            log.unlink(missing_ok=True)
            raise
        self._fds.append(fd)
        self._log_fd = fd
        self._active = _Segment(log, own, sealed=False)
        self._map = mapping
        self._log_end = 0

    def _become_owner(self) -> None:
        """Make this process's owner directory, locked before any other client can see it:
        made under a hidden name (adoption skips those), locked, then renamed into place."""
        name = f"{os.getpid()}-{os.urandom(6).hex()}"
        hidden = self.path / f".{name}"
        path = self.path / name
        hidden.mkdir()
        try:
            fd = _lock(hidden / "lock")
        except OSError:
            shutil.rmtree(hidden, ignore_errors=True)
            raise
        try:
            hidden.rename(path)
        except OSError:
            _remove_owner(hidden, fd)
            raise
        self._fds.append(fd)
        self._owners.append(_Owner(path, fd))
        self.owner = name

    def _remove(self, batch: Sequence[bytes]) -> None:
        for data in batch:
            place = self._places.pop(id(data), None)
            if place is not None:
                segment, offset, _ = place
                segment.finish(offset)
                self._owed.add(segment)
                self._size -= len(data)
        self._settle()

    def _settle(self) -> None:
        """Write the owed acknowledgements and delete the finished segments (and adopted
        owners); what the disk refuses stays owed, for the next batch."""
        for segment in list(self._owed):
            try:
                deleted = segment.settle()
            except _GONE as e:
                if self._closed:
                    continue  # its messages stay for the next client, as far as they can
                self._rebuild(e, [])
                return
            except OSError as e:
                if self._failing is None:
                    self._logger.warning(
                        "cannot write to the spool %s (%s); retrying with the next batch",
                        self.path,
                        e,
                    )
                self._failing = e
                continue
            self._owed.discard(segment)
            if deleted and not self._closed:  # closed: its descriptors are closed already
                self._forget_segment(segment)
        if not self._owed and self._failing is not None:
            self._logger.info("the spool %s is written to again", self.path)
            self._failing = None

    def _forget_segment(self, segment: _Segment) -> None:
        owner = segment.owner
        owner.segments -= 1
        if not owner.segments and owner.path.name != self.owner:
            self._owners.remove(owner)
            self._fds.remove(owner.lock_fd)
            _remove_owner(owner.path, owner.lock_fd)

    def _rebuild(self, cause: OSError, pending: list[bytes]) -> None:
        """The directory was removed under us: make it again and write every live message
        (and ``pending``, whose add was under way) again; or, if that fails, keep messages in
        memory only from now on. Each is said once, as a warning."""
        live = [data for _, _, data in self._places.values()] + pending
        gone = self._owners
        self._drop_active()
        self._places.clear()
        self._size = 0
        self._owed.clear()
        self._owners = []
        self.owner = None
        self._segments = 0
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            for data in live:
                self._write(data)
        except OSError as e:
            self._drop_active()
            gone += self._owners
            self._owners = []
            self.owner = None
            self._places.clear()
            self._size = 0
            self._in_memory = True
            self._logger.warning(
                "the spool %s was removed (%s) and cannot be made again (%s); unfinished "
                "messages are kept in memory only from now on",
                self.path,
                cause,
                e,
            )
        else:
            self._logger.warning(
                "the spool %s was removed (%s); made again, with its %d unfinished message(s)",
                self.path,
                cause,
                len(live),
            )
        for owner in gone:  # what is left of them: their messages are written again, above
            self._fds.remove(owner.lock_fd)
            _remove_owner(owner.path, owner.lock_fd)

    def adopt_orphans(self) -> list[bytes]:
        """Take over the segments of owners that are no longer alive, and return their
        unfinished messages, oldest first. From then on they are this client's to finish."""
        orphans: list[bytes] = []
        self._guarded(self._adopt_orphans, orphans)
        return orphans

    def _adopt_orphans(self, orphans: list[bytes]) -> None:
        for path in sorted(self.path.iterdir(), key=_age):
            if path.name == self.owner or path.name.startswith(".") or not path.is_dir():
                continue  # ours, one being made (see _become_owner), or not an owner
            try:
                fd = _lock(path / "lock")
            except OSError:
                continue  # its process is alive (or another client just removed it)
            try:
                logs = _read_logs(path)
            except OSError:  # removed meanwhile, or unreadable now: the next client's
                os.close(fd)
                continue
            if not logs:
                _remove_owner(path, fd)
                continue
            self._fds.append(fd)
            owner = _Owner(path, fd)
            self._owners.insert(0, owner)  # ours, if any, stays last
            orphans += self._adopt(owner, logs)
        self._settle()

    def _adopt(self, owner: _Owner, logs: list[_Read]) -> list[bytes]:
        found: list[bytes] = []
        for log, acknowledged, lines in logs:
            segment = _Segment(log, owner)
            for offset, data in lines:
                if offset not in acknowledged:
                    self._places[id(data)] = (segment, offset, data)
                    segment.unfinished += 1
                    self._size += len(data)
                    found.append(data)
            if not segment.unfinished:
                self._owed.add(segment)  # deleted with the next batch (or at close)
        return found

    def _seal_active(self) -> None:
        assert self._active is not None
        self._close_active()
        self._active.sealed = True
        if not self._active.unfinished:
            self._owed.add(self._active)  # deleted with the next batch (or at close)

    def _close_active(self) -> None:
        """Unmap the active log and cut it to its lines, giving back the rest of its space."""
        assert self._map is not None
        self._map.close()
        self._map = None
        self._fds.remove(self._log_fd)
        try:
            os.ftruncate(self._log_fd, self._log_end)
        finally:
            os.close(self._log_fd)

    def _drop_active(self) -> None:
        """Unmap and close the active log as it is (its file is gone, or not ours)."""
        if self._map is not None:
            self._map.close()
            self._map = None
            self._fds.remove(self._log_fd)
            os.close(self._log_fd)

    def reopen_after_fork(self) -> None:
        """In a forked child: no owner until its first message; the parent's messages stay
        the parent's.

        The inherited descriptors and mapping are closed in the child only (the parent's log is
        not cut: the parent still writes to it); the locks stay held through the parent's own
        descriptors."""
        if self._map is not None:
            self._map.close()
        self._release()
        self._reset()

    def close(self, keep_locks: bool = False) -> None:
        """Release the spool; unfinished messages stay for the next client to adopt, and an
        owner with none is removed. ``add`` is refused from now on. ``keep_locks`` (at
        interpreter exit) holds the locks of unfinished messages until the process is gone:
        a batch still in a request must not be adopted by another client meanwhile."""
        self._guarded(self._close, keep_locks)

    def _close(self, keep_locks: bool) -> None:
        if self._map is not None:
            self._seal_active()
        self._settle()
        if self.owner is not None and not self._places:
            own = self._owners.pop()
            self._fds.remove(own.lock_fd)
            _remove_owner(own.path, own.lock_fd)
            self.owner = None
        self._closed = True  # a signal handler's add deferred until now is refused, too
        if not keep_locks:
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


_Read = tuple[Path, set[int], list[tuple[int, bytes]]]
"""A log, the offsets acknowledged in its ack log, and its lines."""


def _read_logs(owner: Path) -> list[_Read]:
    """Every log of ``owner``, oldest first, read before anything of it is adopted."""
    logs = sorted((p for p in owner.glob("*.log") if p.stem.isdigit()), key=lambda p: int(p.stem))
    return [(log, _acknowledged(log.with_suffix(".ack")), _lines(log)) for log in logs]


def _lines(log: Path) -> list[tuple[int, bytes]]:
    """``(offset, message)`` for each complete line; a last line cut short is not a message,
    and the reserved zeros after the last line are none (JSON text holds no zero byte). The
    log is mapped, not read, so that its unused reserved megabytes are never copied."""
    with open(log, "rb") as f:
        if not os.fstat(f.fileno()).st_size:
            return []
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            written = mapped.find(b"\0")
            raw = mapped[: written if written >= 0 else len(mapped)]
    lines = raw.split(_NEWLINE)[:-1]  # the last piece follows the last newline: not a line
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line) + 1)
    return list(zip(offsets, lines))


def _remove_owner(owner: Path, lock_fd: int) -> None:
    """Delete what is left of an owner's directory, then let go of its lock. Logs go before
    their acknowledgements, and the lock file last: a client that locks a new ``lock`` in
    the meantime must find no log without its acknowledgements (it would send them again)."""
    try:
        for leftover in sorted(
            owner.iterdir(), key=lambda p: (p.name == "lock", p.suffix != ".log")
        ):
            leftover.unlink(missing_ok=True)
        owner.rmdir()
    except OSError:
        pass  # removed already, or not removable now: the next client's to clean
    finally:
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
