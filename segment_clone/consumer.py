"""Consumer threads: drain the queue into batches and deliver them.

Each consumer owns one keep-alive session (through ``Uploader``). A batch is finished exactly
once: delivered, or reported through the ``DropReporter``; a batch whose retry wait is cut
short by ``pause()`` goes back to the head of the queue, still owed, for the next flush.
"""

from __future__ import annotations

import logging
from threading import Thread

from .aio import Latch
from .errors import APIError, FatalError, ShutdownInterrupted
from .message_queue import MessageQueue
from .request import TokenSource
from .spool import Spool
from .stats import DropReporter, OnError, Stats
from .uploader import (
    DEFAULT_MAX_RATE_LIMIT_DURATION,
    DEFAULT_MAX_TOTAL_BACKOFF_DURATION,
    GiveUp,
    Uploader,
)

MAX_MSG_SIZE = 32 << 10
BATCH_SIZE_LIMIT = 475000
"""Bytes of messages per batch, leaving room for the envelope under the API's 500 KB."""

__all__ = [
    "BATCH_SIZE_LIMIT",
    "DEFAULT_MAX_RATE_LIMIT_DURATION",
    "DEFAULT_MAX_TOTAL_BACKOFF_DURATION",
    "MAX_MSG_SIZE",
    "APIError",
    "Consumer",
    "FatalError",
    "ShutdownInterrupted",
]


class Consumer(Uploader, Thread):
    """A daemon thread that uploads batches from ``queue`` until ``pause()`` is called."""

    log = logging.getLogger("segment")
    max_batch_bytes = BATCH_SIZE_LIMIT

    def __init__(
        self,
        queue: MessageQueue,
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
        self.running = True
        self.in_flight: list[bytes] = []
        self.stopped = Latch()
        """Opened when ``run`` returns: what ``Client.ajoin`` awaits instead of ``join()``."""

    def run(self) -> None:
        try:
            while self.running:
                try:
                    self.upload()
                except Exception:  # a bug here must not silently stop delivery
                    self.log.exception("consumer error; continuing")
        finally:
            self.stopped.open()

    def pause(self) -> None:
        """Stop after the current request; a pending retry wait is cut short."""
        self.running = False
        self.stop()
        self.queue.wake()

    def next(self) -> list[bytes]:
        """The next batch: up to ``upload_size`` messages and ``max_batch_bytes`` bytes."""
        return self.queue.get_batch(
            self.upload_size, self.max_batch_bytes, self.upload_interval, self._stopping
        )

    def upload(self) -> bool:
        """Send one batch; True if it was delivered."""
        batch = self.next()
        if not batch:
            return False
        self.in_flight = batch
        try:
            delivered = self._deliver(batch)
        except ShutdownInterrupted:
            self.queue.requeue(batch)
            return False
        finally:
            self.in_flight = []
        if self.spool is not None:
            self.spool.remove(batch)
        self.queue.task_done(len(batch))
        return delivered

    def _deliver(self, batch: list[bytes]) -> bool:
        """Deliver ``batch`` or report it as dropped; True when delivered."""
        try:
            self.request(batch)
        except ShutdownInterrupted:
            raise
        except GiveUp as e:
            self.reporter.report(e.reason, e.cause, batch)
            return False
        except Exception as e:  # a bug, but the batch must still be accounted for
            self.log.exception("unexpected error delivering a batch")
            self.reporter.report("error", e, batch)
            return False
        self.stats.add("delivered", len(batch))
        return True
