"""What segment_clone keeps from analytics-python 2.4.0 that its own engine would not need.

The wire identity (``context.library`` and the User-Agent, which Segment and its destinations
read), the ``DatetimeSerializer`` export, and ``ForeignQueue``: the adapter that lets
``Consumer`` drain a plain ``queue.Queue`` of message dicts the way upstream's consumer did, as
upstream's test suite and some applications do. The SDK's own path never goes through here
except for the constants.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, Protocol

from .encoding import encode_message
from .errors import MessageDropped
from .wire import MAX_BATCH_BYTES, MAX_MSG_SIZE

UPSTREAM_VERSION = "2.4.0"
"""The analytics-python release whose behaviour, names and wire format segment_clone keeps."""
LIBRARY = {"name": "analytics-python", "version": UPSTREAM_VERSION}
"""``context.library`` of every message, as upstream sends it."""
UPSTREAM_USER_AGENT = f"analytics-python/{UPSTREAM_VERSION}"

log = logging.getLogger("segment")


class DatetimeSerializer(json.JSONEncoder):
    """``json`` encoder that writes dates and datetimes as ISO 8601 (upstream's export)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, (date, datetime)):
            return o.isoformat()
        return super().default(o)


class Report(Protocol):
    """``DropReporter.report``: how a dropped message is counted, logged and handed on."""

    def __call__(self, reason: str, exc: BaseException, batch: Sequence[Any]) -> None: ...


class ForeignQueue:
    """A ``queue.Queue`` handed to ``Consumer`` by its caller, drained as upstream did.

    Items are whatever the caller put (normally message dicts), and batches are cut by
    upstream's rules: ``upload_size`` items, ``upload_interval`` seconds from the start of the
    batch, and a byte budget measured with ``json.dumps`` as upstream measured it. Unlike
    upstream, an oversize item is reported and marked done (upstream's never was, so a later
    ``join()`` hung), a batch put back after a rate limit that no longer fits is reported as
    ``queue_full``, and a batch never exceeds ``MAX_BATCH_BYTES`` as sent: the item that would
    take it over opens the next batch.
    """

    def __init__(self, source: queue.Queue[Any], report: Report) -> None:
        self.queue = source
        self._report = report
        self._carry: tuple[Any, int, int] | None = None
        """An item taken that would have made the body too big: the next batch's first,
        with its size by upstream's measure and as sent."""

    def get_batch(
        self, max_items: int, max_bytes: int, wait: float, stop: threading.Event
    ) -> list[Any]:
        items: list[Any] = []
        total = 0
        array = 1  # bytes of the batch array as sent: brackets, commas, messages
        started = time.monotonic()
        while len(items) < max_items and not stop.is_set():
            taken = self._take(wait - (time.monotonic() - started))
            if taken is None:
                break
            item, size, sent = taken
            if items and array + sent + 1 > MAX_BATCH_BYTES:
                self._carry = taken
                break
            items.append(item)
            total += size
            array += sent + 1
            if total >= max_bytes:
                break
        return items

    def _take(self, timeout: float) -> tuple[Any, int, int] | None:
        """The next item within ``MAX_MSG_SIZE`` with its two sizes, or None after
        ``timeout`` seconds; an oversize item is reported and marked done."""
        if self._carry is not None:
            taken, self._carry = self._carry, None
            return taken
        while timeout > 0:
            started = time.monotonic()
            try:
                item = self.queue.get(block=True, timeout=timeout)
            except queue.Empty:
                return None
            size = _upstream_size(item)
            if size <= MAX_MSG_SIZE:
                return item, size, len(encode_message(item)[0])
            log.error("Item exceeds %d bytes, dropping it", MAX_MSG_SIZE)
            self._report("oversize", MessageDropped("oversize", f"{size} bytes of JSON"), [item])
            self.queue.task_done()
            timeout -= time.monotonic() - started
        return None

    def requeue(self, batch: list[Any]) -> None:
        """Put a rate-limited batch back at the tail (a ``queue.Queue`` has no head to put it
        at), then mark the taken copies done: the new copies carry their own obligation."""
        overflow = []
        for item in batch:
            try:
                self.queue.put(item, block=False)
            except Exception:
                overflow.append(item)
        self.task_done(len(batch))
        if overflow:
            log.error("Queue full during rate-limit re-queue; dropping %d item(s)", len(overflow))
            self._report(
                "queue_full",
                MessageDropped("queue_full", "queue full while re-queueing a rate-limited batch"),
                overflow,
            )

    def task_done(self, count: int) -> None:
        for _ in range(count):
            self.queue.task_done()

    def wake(self) -> None:
        """Nothing to wake: ``get_batch`` never waits longer than ``upload_interval``."""


def _upstream_size(item: Any) -> int:
    """Bytes upstream counted for an item: ``json.dumps`` with its default separators (more
    than the compact JSON sent), or our encoding when ``json`` cannot write the item."""
    try:
        return len(json.dumps(item, cls=DatetimeSerializer).encode())
    except (TypeError, ValueError, RecursionError):
        return len(encode_message(item)[0])
