"""Delivery counters and the single place where a message is given up.

Every drop goes through ``DropReporter.report``: it is counted by reason, logged at WARNING
(throttled, so a dead endpoint cannot flood the log) and handed to ``on_error``. An exception
raised by ``on_error`` is logged and swallowed so that it can never kill a consumer thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Callable, TypedDict

from .encoding import decode_message

if TYPE_CHECKING:  # typing has it from 3.11; annotations are not evaluated at run time
    from typing_extensions import NotRequired

OnError = Callable[[BaseException, list[dict[str, Any]]], Any]

LOG_WINDOW_SECONDS = 10.0


class StatsSnapshot(TypedDict):
    """What ``Client.stats()`` returns."""

    enqueued: int
    delivered: int
    retried: int
    dropped: dict[str, int]
    pending: int
    destinations: NotRequired[dict[str, StatsSnapshot]]
    """Each destination's own counters, in a client with several (by label)."""


class Stats:
    """Counters updated by consumer threads (per batch, never per ``track()`` call)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # guards the counters; re-entrant for signal handlers
        self.enqueued = 0
        self.delivered = 0
        self.retried = 0
        self.dropped: Counter[str] = Counter()

    def add(self, field: str, count: int = 1) -> None:
        with self._lock:
            setattr(self, field, getattr(self, field) + count)

    def add_dropped(self, reason: str, count: int) -> None:
        with self._lock:
            self.dropped[reason] += count

    def snapshot(self, accepted: int, pending: int) -> StatsSnapshot:
        """Counters plus what the queue knows: ``accepted`` puts and ``pending`` messages."""
        with self._lock:
            return {
                "enqueued": self.enqueued + accepted,
                "delivered": self.delivered,
                "retried": self.retried,
                "dropped": dict(self.dropped),
                "pending": pending,
            }


class DropReporter:
    """Counts, logs and reports every message the SDK gives up on."""

    def __init__(
        self,
        stats: Stats,
        on_error: OnError | None,
        log: logging.Logger,
        destination: str | None = None,
    ) -> None:
        self.stats = stats
        self.on_error = on_error
        self.log = log
        self.destination = destination
        """The label of the destination whose lane this reports for, in a client with several:
        set as the exception's ``destination`` attribute and named in the log."""
        self._lock = threading.RLock()  # guards _window; re-entrant for signal handlers
        self._window: dict[str, tuple[float, int]] = {}

    def report(
        self, reason: str, exc: BaseException, batch: Sequence[bytes | dict[str, Any]]
    ) -> None:
        """Account for ``batch`` as dropped for ``reason`` and tell the application."""
        self.stats.add_dropped(reason, len(batch))
        if self.destination is not None:
            with suppress(AttributeError):  # an exception type with __slots__ keeps none
                exc.destination = self.destination  # type: ignore[attr-defined]
        self._log(reason, exc, len(batch))
        on_error = self.on_error
        if not on_error:  # falsy means no handler, as upstream
            return
        messages = [decode_message(m) if isinstance(m, bytes) else m for m in batch]
        try:
            on_error(exc, messages)
        except Exception:
            self.log.exception("on_error callback raised; continuing")

    def _log(self, reason: str, exc: BaseException, count: int) -> None:
        now = time.monotonic()
        with self._lock:
            started, suppressed = self._window.get(reason, (now - LOG_WINDOW_SECONDS, 0))
            if now - started < LOG_WINDOW_SECONDS:
                self._window[reason] = (started, suppressed + count)
                return
            self._window[reason] = (now, 0)
        extra = f" ({suppressed} more dropped for this reason since the last report)" * bool(
            suppressed
        )
        where = f" for {self.destination}" * (self.destination is not None)
        self.log.warning("dropped %d message(s)%s: %s: %s%s", count, where, reason, exc, extra)
