"""The bounded hand-off between caller threads and consumer threads.

``queue.Queue`` takes a lock and signals a Condition on every put and every get. Here a put is
a length check and a deque append, which the deque makes atomic, with no lock: caller threads
never wait for each other or for a consumer while the queue is less than half full. A put takes
the lock only to wake a consumer that sleeps, when the queue stops being empty or a batch
fills. Consumers take a whole batch under the lock, and ``join`` accepts a timeout. Items are
the encoded message bytes, so a batch can be capped by bytes without re-encoding anything.

Without a lock, callers racing for the last free place can each take it: the queue can hold
one extra message per racing caller thread beyond ``maxsize``.

From half full, puts yield. CPython gives the GIL to a thread that waits for it only after the
holder has run a whole switch interval (5 ms), so callers in a tight loop of ``track()`` calls
starve the consumer each time it comes back from a socket call: the queue fills, and calls are
turned away and their messages reported as dropped. So from half full one put in
``YIELD_EVERY`` sleeps ``YIELD_SECONDS`` (one in a quarter of that from three quarters full),
and the other caller threads wait behind it, so that the GIL goes to a consumer. A burst that
fits in half the queue is taken at full speed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

from .wire import BatchCut, fit_under

YIELD_EVERY = 100
"""Puts between two yields from half full; a quarter of that from three quarters full."""
YIELD_SECONDS = 0.0002
"""How long a yielding put sleeps: most of the 0.3 ms of CPU a consumer spends per batch of 100."""


class MessageQueue:
    """FIFO of encoded messages with ``queue.Queue``-style task accounting.

    Every item put is one unfinished task until ``task_done`` is called for it, whatever its
    fate (delivered, reported through ``on_error``, or spooled); ``join`` waits for that count to
    reach zero.
    """

    def __init__(
        self, maxsize: int, batch_size: int = 100, batch_cut: BatchCut = fit_under
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"max_queue_size must be at least 1, got: {maxsize!r}")
        self.maxsize = maxsize
        self.batch_size = batch_size
        self._cut = batch_cut
        """Where a batch ends by bytes: ``wire.batch_cut`` for Segment's rule."""
        self._items: deque[bytes] = deque()
        self._half = max(maxsize // 2, 1)
        self._crowded = max(maxsize * 3 // 4, 1)
        self._lock = threading.RLock()
        """Guards every field below but ``_items`` (whose append and popleft are atomic).
        Re-entrant: a signal handler may put while its thread holds it (in ``flush()``)."""
        self._yielding = threading.RLock()
        """Held by the caller that yields: other callers wait behind it instead of taking the
        GIL that the yield is meant for. Re-entrant, for a signal handler that tracks an event
        while its thread sleeps here."""
        self._ready = threading.Condition(self._lock)
        self._space = threading.Condition(self._lock)
        self._done = threading.Condition(self._lock)
        self._held = 0
        """Items taken out of ``_items`` (by consumers or ``take_all``) and not yet done."""
        self._finished = 0
        self._promised = 0
        """Items a feeder has yet to ``put``: unfinished already, so ``join`` waits for them."""
        self._sleepers = 0
        """Consumers waiting for items (guarded by ``_lock``); a put that fills a batch wakes
        them only when this is not zero."""
        self._idle = False
        """Set (under ``_lock``) by a consumer before it sleeps on an empty queue; the first put
        to see it clears it under the lock and wakes the consumers. A flag rather than "my put
        made the length 1": two racing first puts can both see a length of 2."""
        self._flushing = 0
        self._waiters: list[Callable[[], None]] = []

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        """``queue.Queue.empty``: code written for upstream's ``client.queue`` calls it."""
        return not self._items

    def full(self) -> bool:
        return len(self._items) >= self.maxsize

    @property
    def unfinished_tasks(self) -> int:
        """Items accepted but not yet finished: queued plus held by a consumer. Read under the
        lock: a consumer moves items from the deque to ``_held`` in two steps."""
        with self._lock:
            return self._unfinished()

    @property
    def accepted(self) -> int:
        """Items ever accepted: each is queued, held, or finished."""
        with self._lock:
            return self._finished + self._unfinished()

    def _unfinished(self) -> int:
        return len(self._items) + self._held + self._promised

    def put_nowait(self, item: bytes) -> None:
        """Append ``item`` or raise ``queue.Full``; never waits for room, and below half full
        never waits at all."""
        items = self._items
        if len(items) >= self.maxsize:
            raise queue.Full
        items.append(item)
        # The append comes before this read, and a consumer raises ``_idle`` before it looks
        # at the queue, so one of the two always sees the other.
        if self._idle:
            self._wake_idle()
            return
        n = len(items)
        if self._sleepers:
            if n >= self.batch_size:
                with self._lock:
                    self._ready.notify_all()
        elif n >= self._half:
            self._yield_to_consumers(n)

    def _wake_idle(self) -> None:
        with self._lock:
            if self._idle:
                self._idle = False
                self._ready.notify_all()

    def _yield_to_consumers(self, n: int) -> None:
        """With ``n`` items queued (at least half) and no consumer waiting for items."""
        every = YIELD_EVERY if n < self._crowded else YIELD_EVERY // 4
        with self._yielding:
            if n % every == 0:
                time.sleep(YIELD_SECONDS)

    def put(self, item: bytes, timeout: float | None = None, *, promised: bool = False) -> None:
        """Append ``item``, waiting up to ``timeout`` seconds for room, else raise Full.
        ``promised``: the item is one of those counted by ``promise``."""
        with self._lock:
            if not self._space.wait_for(lambda: len(self._items) < self.maxsize, timeout):
                raise queue.Full
            self._items.append(item)
            if promised:
                self._promised -= 1
            self._ready.notify_all()

    def promise(self, count: int) -> None:
        """Count ``count`` items that a feeder thread will ``put`` as unfinished from now on,
        so that a ``join`` in the meantime does not return while they are still to come."""
        with self._lock:
            self._promised += count

    def get_batch(
        self, max_items: int, max_bytes: int, wait: float, stop: threading.Event
    ) -> list[bytes]:
        """Take up to ``max_items`` items, cut by bytes at ``max_bytes`` by ``batch_cut``.

        Blocks until an item is available, then gives a partial batch up to ``wait`` seconds to
        fill. Returns at once when a flush is in progress, and returns ``[]`` when ``stop`` is
        set, leaving the queue untouched for the next consumer or flush.
        """
        with self._lock:
            self._sleepers += 1
            try:
                while True:
                    while not self._items:
                        if stop.is_set():
                            return []
                        self._idle = True
                        self._ready.wait()
                    deadline = time.monotonic() + wait
                    while len(self._items) < max_items and not self._flushing:
                        if stop.is_set():
                            return []
                        remaining = deadline - time.monotonic()
                        if remaining <= 0:
                            break
                        self._ready.wait(remaining)
                    if self._items:
                        return self._take(max_items, max_bytes)
            finally:
                self._sleepers -= 1

    def _take(self, max_items: int, max_bytes: int) -> list[bytes]:
        items = self._items
        batch = [items.popleft() for _ in range(min(max_items, len(items)))]
        keep = self._cut(list(map(len, batch)), max_bytes)
        if keep < len(batch):  # rare: big messages; the rest stays at the head
            items.extendleft(reversed(batch[keep:]))
            del batch[keep:]
        self._held += len(batch)
        self._space.notify(len(batch))
        return batch

    def take_full(self, max_items: int, max_bytes: int) -> list[bytes]:
        """A batch of ``max_items`` if that many are queued, else ``[]``; never waits."""
        with self._lock:
            if len(self._items) < max_items:
                return []
            return self._take(max_items, max_bytes)

    def take_all(self) -> list[bytes]:
        """Remove every queued item (still unfinished) so it can be reported or spooled."""
        with self._lock:
            # popleft one by one: a put that appends meanwhile (puts take no lock) stays
            # queued, where a copy followed by clear() would wipe it.
            items = self._items
            batch = []
            while items:
                self._held += 1
                batch.append(items.popleft())
            self._space.notify_all()
            return batch

    def requeue(self, batch: list[bytes]) -> None:
        """Put a batch a consumer could not finish back at the head, keeping the order."""
        with self._lock:
            self._items.extendleft(reversed(batch))
            self._held -= len(batch)
            self._ready.notify()

    def task_done(self, count: int = 1) -> None:
        with self._lock:
            if count > self._held:
                raise ValueError("task_done() called for more items than were taken")
            self._held -= count
            self._finished += count
            self._done.notify_all()  # a flush may wait for a mark, not for an empty queue
            if self._held or self._items or self._promised:
                return
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter()

    def mark(self) -> int:
        """Items accepted so far: ``join(upto=mark)`` waits for those only."""
        with self._lock:
            return self._finished + self._unfinished()

    def join(self, timeout: float | None = None, upto: int | None = None) -> bool:
        """Wait until every item is finished, or with ``upto`` until that many items have ever
        been finished (in FIFO order with one consumer: those accepted before the mark);
        return False if ``timeout`` ran out first."""
        with self._lock:
            return self._done.wait_for(lambda: not self._pending_before(upto), timeout)

    def pending_before(self, upto: int | None) -> int:
        """Unfinished items, or with ``upto`` those of the first ``upto`` items."""
        with self._lock:
            return self._pending_before(upto)

    def _pending_before(self, upto: int | None) -> int:
        unfinished = self._unfinished()
        return unfinished if upto is None else min(unfinished, max(0, upto - self._finished))

    def add_waiter(self, waiter: Callable[[], None]) -> bool:
        """Call ``waiter()`` once, on the finishing thread, when no item is left unfinished;
        return False (and never call it) if none is unfinished now. ``join`` for event loops."""
        with self._lock:
            if not self._unfinished():
                return False
            self._waiters.append(waiter)
            return True

    def remove_waiter(self, waiter: Callable[[], None]) -> None:
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    @contextmanager
    def flushing(self) -> Iterator[None]:
        """While open, consumers ship partial batches instead of waiting for them to fill."""
        with self._lock:
            self._flushing += 1
            self._ready.notify_all()
        try:
            yield
        finally:
            with self._lock:
                self._flushing -= 1

    def wake(self) -> None:
        """Wake every waiting consumer so that it re-checks its stop flag."""
        with self._lock:
            self._ready.notify_all()
