"""What is waiting for the store to change: ``wait_for``, ``wait=`` requests and live pages.

The store calls ``Changes.wrote`` after each committed write. Waiters are woken by it instead of
polling, and the debugger page gets a server-sent event (``GET /api/stream``) for it: a doorbell
with the store's version, after which the page asks for what is new with its own filters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Callable

import orjson

RATE_WINDOW = 60
"""Seconds of history in the events-per-second series."""
HEARTBEAT = 15.0
"""Seconds between keep-alive comments on an idle stream, so that a closed page is noticed."""
MIN_PUSH_INTERVAL = 0.25
"""A stream rings at most this often, however fast events arrive: the page re-reads per ring."""
GONE_CHECK_INTERVAL = 1.0
"""How often a wait asks whether its client is still there."""
MAX_STREAM_SECONDS = 600.0
"""A stream then ends (the page's EventSource opens another), so that none is held for ever."""


class Changes:
    """A version number bumped by every write, an epoch bumped by every reset, the recent
    events-per-second, and waiting on them. ``clock`` is wall-clock seconds."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._cond = threading.Condition()
        self._closing = threading.Event()
        self._clock = clock
        self._per_second: dict[int, int] = {}
        self.version = 0
        self.epoch = 0

    def wrote(self, stored: int) -> None:
        with self._cond:
            self.version += 1
            if stored:
                second = int(self._clock())
                self._per_second[second] = self._per_second.get(second, 0) + stored
                if len(self._per_second) > 2 * RATE_WINDOW:
                    for old in [s for s in self._per_second if s <= second - RATE_WINDOW]:
                        del self._per_second[old]
            self._cond.notify_all()

    def reset(self) -> None:
        """The store was emptied: start a new epoch and forget the rate."""
        with self._cond:
            self.epoch += 1
            self._per_second.clear()
        self.wrote(0)

    def rate(self) -> list[int]:
        """Messages stored in each of the last ``RATE_WINDOW`` seconds, oldest first."""
        with self._cond:
            now = int(self._clock())
            return [self._per_second.get(s, 0) for s in range(now - RATE_WINDOW + 1, now + 1)]

    def wait(
        self, ready: Callable[[], bool], timeout: float, gone: Callable[[], bool] | None = None
    ) -> bool:
        """Block until ``ready()`` is true (checked again after each write, outside the lock
        so that writers never wait for it), or ``timeout`` seconds pass, or ``close()``, or
        ``gone()`` (the client left: asked every ``GONE_CHECK_INTERVAL``)."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.version  # read before ready(): a write after this bumps it
            if ready():
                return True
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closing.is_set() or (gone is not None and gone()):
                    return ready()
                if self.wait_past(seen, min(remaining, GONE_CHECK_INTERVAL)):
                    break

    def wait_past(self, version: int, timeout: float) -> bool:
        """Block until the version is no longer ``version``; False on timeout or close."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.version == version and not self._closing.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return not self._closing.is_set()

    def stream(self) -> Iterator[bytes]:
        """Server-sent events: one ``data: {"version", "epoch"}`` now and after each change
        (at most every ``MIN_PUSH_INTERVAL``), comments in between; ends on ``close()``."""
        yield b"retry: 1000\n\n"
        seen = None
        ends = time.monotonic() + MAX_STREAM_SECONDS
        while not self._closing.is_set() and time.monotonic() < ends:
            version, epoch = self.version, self.epoch
            if version != seen:
                seen = version
                yield b"data: " + orjson.dumps({"version": version, "epoch": epoch}) + b"\n\n"
            else:
                yield b": idle\n\n"
            self._closing.wait(MIN_PUSH_INTERVAL)
            self.wait_past(version, HEARTBEAT)

    def close(self) -> None:
        """Release every waiter and end every stream (the collector is stopping)."""
        self._closing.set()
        with self._cond:
            self._cond.notify_all()
