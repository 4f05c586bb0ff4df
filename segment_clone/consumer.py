"""Consumer threads: drain a queue into batches and deliver them, with upstream's API.

``Consumer(queue, write_key, ...)`` keeps analytics-python's constructor, attributes and
methods (``run``, ``pause``, ``next``, ``upload``, ``request``, the rate-limit state) on top of
the shared engine in ``uploader``. Each attempt calls this module's ``post``, looked up at call
time, so ``mock.patch("segment_clone.consumer.post")`` works as it did upstream.

A batch is finished exactly once: delivered, or reported through the ``DropReporter``. A batch
that was rate-limited, or whose retry wait ``pause()`` cut short, goes back to the queue, still
owed: to the head of the client's own ``MessageQueue``, so order is kept, or to the tail of a
plain ``queue.Queue``, as upstream did.

With ``gzip=True``, while a batch is at the server, the consumer takes the next one, if a full
one is queued, and encodes and compresses its body (``PreparedBatch``): the compression, which
runs without the GIL, then overlaps the server's work. Batches still go one at a time, in order,
on one connection. The batch taken ahead is counted in ``in_flight``, is the next ``upload()``,
and goes back to the head of the queue if the consumer stops first.
"""

from __future__ import annotations

import logging
import queue as queue_module
import threading
from threading import Thread
from typing import Any, Protocol

from .aio import Latch
from .compat import ForeignQueue
from .errors import APIError, FatalError, ShutdownInterrupted
from .keepalive import while_answer_pending
from .message_queue import MessageQueue
from .request import PreparedBatch, TokenSource, post
from .spool import Spool
from .stats import DropReporter, OnError, Stats
from .uploader import (
    DEFAULT_MAX_RATE_LIMIT_DURATION,
    DEFAULT_MAX_TOTAL_BACKOFF_DURATION,
    GiveUp,
    Uploader,
)
from .wire import BATCH_SIZE_LIMIT, MAX_MSG_SIZE

__all__ = [
    "BATCH_SIZE_LIMIT",
    "DEFAULT_MAX_RATE_LIMIT_DURATION",
    "DEFAULT_MAX_TOTAL_BACKOFF_DURATION",
    "MAX_MSG_SIZE",
    "APIError",
    "Consumer",
    "FatalError",
    "ShutdownInterrupted",
    "post",
]


class BatchSource(Protocol):
    """What a consumer drains: the client's ``MessageQueue``, or a ``ForeignQueue``."""

    def get_batch(
        self, max_items: int, max_bytes: int, wait: float, stop: threading.Event
    ) -> list[Any]: ...

    def requeue(self, batch: list[Any]) -> None: ...

    def task_done(self, count: int) -> None: ...

    def wake(self) -> None: ...


class Consumer(Uploader, Thread):
    """A daemon thread that uploads batches from ``queue`` until ``pause()`` is called.

    ``queue`` is the client's ``MessageQueue`` of encoded messages, any ``queue.Queue`` of
    message dicts, or None for a consumer used only through ``request()``.
    """

    log = logging.getLogger("segment")
    max_batch_bytes = BATCH_SIZE_LIMIT

    def __init__(
        self,
        queue: MessageQueue | queue_module.Queue[Any] | None,
        write_key: str,
        upload_size: int = 100,
        host: str | None = None,
        on_error: OnError | None = None,
        upload_interval: float = 0.5,
        gzip: bool = False,
        retries: int = 10,
        timeout: float = 15,
        proxies: dict[str, str] | None = None,
        oauth_manager: TokenSource | None = None,
        max_total_backoff_duration: float = DEFAULT_MAX_TOTAL_BACKOFF_DURATION,
        max_rate_limit_duration: float = DEFAULT_MAX_RATE_LIMIT_DURATION,
        *,
        stats: Stats | None = None,
        reporter: DropReporter | None = None,
        spool: Spool | None = None,
    ) -> None:
        Thread.__init__(self, daemon=True, name="segment-clone-consumer")
        Uploader.__init__(
            self,
            write_key,
            host=host,
            gzip=gzip,
            retries=retries,
            timeout=timeout,
            proxies=proxies,
            oauth_manager=oauth_manager,
            max_total_backoff_duration=max_total_backoff_duration,
            max_rate_limit_duration=max_rate_limit_duration,
            stats=stats,
        )
        self.queue = queue
        self.upload_size = upload_size
        self.upload_interval = upload_interval
        self.reporter = reporter or DropReporter(self.stats, on_error, self.log)
        self.spool = spool
        self.in_flight: list[Any] = []
        """Messages this consumer holds: the batch being delivered, and the one taken ahead."""
        self._ahead: PreparedBatch | None = None
        self.stopped = Latch()
        """Opened when ``run`` returns: what ``Client.ajoin`` awaits instead of ``join()``."""
        self._source: BatchSource | None = (
            None
            if queue is None
            else queue
            if isinstance(queue, MessageQueue)
            else ForeignQueue(queue, self.reporter.report)
        )

    @property
    def on_error(self) -> OnError | None:
        """The handler for dropped batches; assignable, as upstream's attribute was."""
        return self.reporter.on_error

    @on_error.setter
    def on_error(self, value: OnError | None) -> None:
        self.reporter.on_error = value

    def run(self) -> None:
        try:
            while self.running:
                try:
                    self.upload()
                except Exception:  # a bug here must not silently stop delivery
                    self.log.exception("consumer error; continuing")
        finally:
            self._requeue_ahead()
            self.stopped.open()

    def pause(self) -> None:
        """Stop after the current request; a pending retry wait is cut short."""
        super().pause()
        if self._source is not None:
            self._source.wake()

    def next(self) -> list[Any]:
        """The next batch: up to ``upload_size`` messages and ``max_batch_bytes`` bytes,
        waiting at most ``upload_interval`` for a partial batch to fill."""
        return self._queue().get_batch(
            self.upload_size, self.max_batch_bytes, self.upload_interval, self._stopping
        )

    def upload(self) -> bool:
        """Send the next batch; True if it was delivered."""
        source = self._queue()
        batch: list[Any] = self._ahead if self._ahead is not None else self.next()
        self._ahead = None
        if not batch:
            return False
        self.in_flight = batch
        delivered = finished = False
        try:
            delivered = finished = self.deliver(batch)
        except ShutdownInterrupted:
            pass
        except GiveUp as e:
            finished = True
            self.log.error("error uploading: %s", e.cause)
            self.reporter.report(e.reason, e.cause, batch)
        except Exception as e:  # a bug, but the batch must still be accounted for
            finished = True
            self.log.exception("unexpected error delivering a batch")
            self.reporter.report("error", e, batch)
        finally:
            self.in_flight = list(self._ahead or [])
        if not finished:
            self._requeue_ahead()
            source.requeue(batch)
            return False
        if delivered:
            self.stats.add("delivered", self._delivered(batch))
        try:
            if self.spool is not None:
                self.spool.remove(batch)
        finally:
            source.task_done(len(batch))  # whatever the disk says: the batch's fate is decided
        return delivered

    def _delivered(self, batch: list[Any]) -> int:
        """How many of a delivered ``batch`` count as delivered: all of them, unless a
        subclass's ``_send`` reported some of them as refused one by one."""
        return len(batch)

    def _send(self, batch: list[Any], retry_count: int) -> Any:
        with while_answer_pending(self._look_ahead):
            return self._post_with(post, batch, retry_count)

    def _look_ahead(self) -> None:
        """Take and compress the next batch while the current one is at the server: only a
        full batch (a partial one could still grow), and only with gzip. Without gzip there is
        nothing to overlap, and in alternating runs it lowered the throughput in 7 pairs of 8."""
        source = self._source
        if self._ahead is not None or not self.gzip or not isinstance(source, MessageQueue):
            return
        messages = source.take_full(self.upload_size, self.max_batch_bytes)
        if messages:
            self._ahead = PreparedBatch(messages, self.write_key, self.gzip)
            self.in_flight = [*self.in_flight, *messages]

    def _requeue_ahead(self) -> None:
        """Put the batch taken ahead back at the head of the queue, still owed."""
        if self._ahead is not None:
            self._queue().requeue(self._ahead)
            self._ahead = None
            self.in_flight = []

    def _queue(self) -> BatchSource:
        if self._source is None:
            raise RuntimeError("this Consumer was built without a queue; only request() works")
        return self._source
