"""``AsyncBufferedConsumer``: the ``send()``/``flush()`` interface, delivered in the background.

It rides the SDK's own machinery instead of a second implementation: each (endpoint, auth)
pair gets a lane, which is a bounded ``MessageQueue`` drained by one ``segment_clone`` consumer
thread whose ``_send`` speaks Mixpanel's JSON ingestion API (``wire``) through the Segment
face's keep-alive transport. Batching, the retry policy (backoff, ``Retry-After``, budgets),
``on_error``, ``stats()`` and the exit-time flush are the ones the Segment client uses.
Keeping auth in the lane key means a batch never mixes credentials.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from contextlib import ExitStack
from functools import partial
from typing import Any, Callable

import orjson

from .. import aio, lifecycle, request
from ..consumer import Consumer as QueueConsumer
from ..errors import MessageDropped
from ..message_queue import MessageQueue
from ..stats import DropReporter, OnError, Stats, StatsSnapshot
from ..uploader import DEFAULT_MAX_RATE_LIMIT_DURATION, DEFAULT_MAX_TOTAL_BACKOFF_DURATION
from ..wire import ascii_json
from . import wire
from .buffered import MAX_BATCH, MAX_IMPORT_BATCH, batch_size
from .credentials import ServiceAccountCredentials
from .errors import MixpanelAPIError
from .transport import DEFAULT_API_HOST, Auth, check_endpoint, endpoint_urls, normalize_auth

logger = logging.getLogger("mixpanel")

NO_AUTH: Auth = (None, None)

MAX_BATCH_BYTES = 1 << 20
"""JSON bytes per request: well inside ``/import``'s 10 MB and the 2 MB that older ``/track``
documentation gives."""
LANE_BATCH = 500
"""Messages per ``/track``, ``/engage`` and ``/groups`` request when ``max_size`` is not given.
Mixpanel documents 2000 per request on every ingestion endpoint; upstream's 50 dates from an
older limit. Per event, a lane's thread spent about 10 µs at 50, 4 at 200 and 2.3 to 3.3 at
500, and hardly less at 2000, on the thread that shares the GIL with the caller; 500 keeps a
body near 250 KB and a batch that the server refuses whole to a quarter of the limit."""


class _Reporter(DropReporter):
    """Hands ``on_error`` decoded messages; text that is not JSON is passed as it is.

    ``send()`` does not parse what it is given (upstream does not either), so a malformed
    message must not break the accounting when its batch is reported.
    """

    def report(self, reason: str, exc: BaseException, batch: Any) -> None:
        super().report(reason, exc, [_decode(m) for m in batch])


def _decode(message: bytes | Any) -> Any:
    if not isinstance(message, bytes):
        return message
    try:
        return orjson.loads(message)
    except orjson.JSONDecodeError:
        return message.decode("utf-8", "replace")


class _LaneConsumer(QueueConsumer):
    """A consumer thread for one (endpoint, auth) lane, posting JSON batches (``wire``).

    Each POST goes through ``request._session``, the keep-alive transport the Segment face's
    consumers share (looked up at call time, so patching the seam reaches the lanes too).
    ``_send`` raises ``MixpanelAPIError`` (an ``APIError``) with the HTTP status, so the shared
    policy decides: 5xx and 429 are retried, ``Retry-After`` is honoured, and a 2xx whose body
    says no is a rejection that no retry would fix. The records a ``strict=1`` import refused
    go to ``on_error`` at once; the rest of their batch counts as delivered.
    """

    log = logger
    max_batch_bytes = MAX_BATCH_BYTES

    def __init__(
        self,
        queue: MessageQueue,
        endpoint: str,
        url: str,
        auth: Auth,
        credentials: ServiceAccountCredentials | None,
        verify_cert: bool,
        **settings: Any,
    ) -> None:
        super().__init__(queue, "", **settings)
        self.name = f"mixpanel-{endpoint}"
        self.endpoint = endpoint
        self.url = wire.url(url, endpoint, credentials)
        self.headers = wire.headers(endpoint, auth, credentials)
        self.verify = None if verify_cert else False
        """None keeps the session's own setting (on), and with it the transport's fast path."""
        self.refused = 0
        """Messages of the batch last sent that the server refused one by one."""

    def _send(self, batch: list[bytes], retry_count: int) -> None:
        self.refused = 0
        headers = self.headers
        if retry_count:
            headers = {**headers, "X-Retry-Count": str(retry_count)}
        response = request._session.post(
            self.url,
            data=wire.body(self.endpoint, batch),
            headers=headers,
            timeout=self.timeout,
            verify=self.verify,
        )
        failed = [
            f for f in wire.failed_records(self.endpoint, response) if f.position < len(batch)
        ]
        if failed:
            self.refused = len(failed)
            listed = "; ".join(f.describe() for f in failed)
            message = f"{len(failed)} of {len(batch)} records refused: {listed}"
            error = MixpanelAPIError(response.status_code, message, response, self.endpoint)
            self.reporter.report("rejected", error, [batch[f.position] for f in failed])

    def _delivered(self, batch: list[bytes]) -> int:
        return len(batch) - self.refused


class _Lane:
    """The queue of one (endpoint, auth) pair and the thread that drains it."""

    def __init__(
        self, queue: MessageQueue, factory: Callable[[MessageQueue], _LaneConsumer]
    ) -> None:
        self.queue = queue
        self._factory = factory
        self.consumer = factory(queue)
        self._start()

    def ensure_running(self) -> None:
        """Replace a consumer stopped by ``shutdown()`` (or dead) so nothing queued strands."""
        if not (self.consumer.running and self.consumer.is_alive()):
            self.consumer = self._factory(self.queue)
            self._start()

    def _start(self) -> None:
        try:
            self.consumer.start()
        except RuntimeError as e:  # "can't start new thread", e.g. at interpreter exit
            logger.warning("could not start %s: %s", self.consumer.name, e)


class AsyncBufferedConsumer:
    """A drop-in for ``BufferedConsumer`` whose ``send()`` never waits on the network.

    ``send()`` puts the message on the bounded queue of its (endpoint, auth) lane and returns;
    a daemon thread per lane sends batches of up to ``LANE_BATCH`` (500) messages, or of
    ``max_size`` when it is given, capped at 50 as upstream's ``BufferedConsumer`` caps it, and
    up to ``import_max_size`` (default 2000) for ``/import``, retrying as the Segment client
    does.
    Messages given up are counted in ``stats()["dropped"]``, logged on the ``"mixpanel"``
    logger and passed to ``on_error(exception, messages)``.
    """

    def __init__(
        self,
        max_size: int | None = None,
        *,
        events_url: str | None = None,
        people_url: str | None = None,
        import_url: str | None = None,
        groups_url: str | None = None,
        api_host: str = DEFAULT_API_HOST,
        request_timeout: float = 10.0,
        retry_limit: int = 10,
        verify_cert: bool = True,
        credentials: ServiceAccountCredentials | None = None,
        import_max_size: int = MAX_IMPORT_BATCH,
        max_queue_size: int = 10000,
        flush_interval: float = 0.5,
        on_error: OnError | None = None,
        shutdown_timeout: float = 5.0,
        max_total_backoff_duration: float = DEFAULT_MAX_TOTAL_BACKOFF_DURATION,
        max_rate_limit_duration: float = DEFAULT_MAX_RATE_LIMIT_DURATION,
    ) -> None:
        if max_queue_size < 1:
            raise ValueError(f"max_queue_size must be at least 1, got: {max_queue_size!r}")
        self._max_size = (
            LANE_BATCH if max_size is None else batch_size("max_size", max_size, MAX_BATCH)
        )
        self._import_max_size = batch_size("import_max_size", import_max_size, MAX_IMPORT_BATCH)
        self._endpoints = endpoint_urls(api_host, events_url, people_url, groups_url, import_url)
        self._max_queue_size = max_queue_size
        self._shutdown_timeout = shutdown_timeout
        self._settings: dict[str, Any] = {
            "credentials": credentials,
            "verify_cert": verify_cert,
            "upload_interval": flush_interval,
            "retries": retry_limit,
            "timeout": request_timeout,
            "max_total_backoff_duration": max_total_backoff_duration,
            "max_rate_limit_duration": max_rate_limit_duration,
        }
        self._reset(on_error)
        lifecycle.register(self)

    def _reset(self, on_error: OnError | None) -> None:
        """Fresh lanes, locks and counters: at construction, and in a forked child, whose
        copies of the parent's queues are the parent's to deliver (and whose locks may have
        been held by threads that do not exist in the child)."""
        self._stats = Stats()
        self._reporter = _Reporter(self._stats, on_error, logger)
        self._lanes: dict[tuple[str, Auth], _Lane] = {}
        self._lock = threading.Lock()

    def _after_fork(self) -> None:
        self._reset(self.on_error)

    @property
    def on_error(self) -> OnError | None:
        return self._reporter.on_error

    @on_error.setter
    def on_error(self, value: OnError | None) -> None:
        self._reporter.on_error = value

    def send(
        self,
        endpoint: str,
        json_message: str | bytes,
        api_key: str | Auth | None = None,
        api_secret: str | None = None,
    ) -> None:
        """Queue ``json_message`` (text, or the UTF-8 bytes ``Mixpanel`` hands its own
        consumers) for ``endpoint`` and return at once.

        Raises ``MixpanelException`` only for an unknown endpoint. A full queue drops the
        message: it is counted, logged and passed to ``on_error``.
        """
        plain = api_key is None and api_secret is None
        key = (endpoint, NO_AUTH if plain else normalize_auth(api_key, api_secret))
        lane = self._lanes.get(key)
        if lane is None:  # a lane exists only for a known endpoint
            check_endpoint(endpoint, self._endpoints)
            lane = self._open_lane(key)
        data = json_message if isinstance(json_message, bytes) else json_message.encode()
        if not data.isascii():
            data = ascii_json(data)  # measured as sent, whatever the serializer
        try:
            lane.queue.put_nowait(data)
        except queue.Full:
            self._reporter.report(
                "queue_full",
                MessageDropped("queue_full", f"{endpoint} queue is full ({self._max_queue_size})"),
                [data],
            )

    def _open_lane(self, key: tuple[str, Auth]) -> _Lane:
        endpoint, auth = key
        size = self._import_max_size if endpoint == "imports" else self._max_size
        factory = partial(
            _LaneConsumer,
            endpoint=endpoint,
            url=self._endpoints[endpoint],
            auth=auth,
            upload_size=size,
            stats=self._stats,
            reporter=self._reporter,
            **self._settings,
        )
        with self._lock:
            lane = self._lanes.get(key)
            if lane is None:
                queue = MessageQueue(self._max_queue_size, batch_size=size)
                lane = self._lanes[key] = _Lane(queue, factory)
                lifecycle.hold(self)  # its threads now owe what it accepts
            return lane

    def flush(self, timeout: float | None = None) -> int:
        """Send everything queued now and wait until it is delivered or reported.

        Returns the number of messages still pending: 0 unless ``timeout`` ran out.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with ExitStack() as stack:
            for lane in self._flush_lanes(stack):
                lane.queue.join(_remaining(deadline))
        return self._flushed(timeout)

    async def aflush(self, timeout: float | None = None) -> int:
        """``flush()`` for a running event loop: it awaits the lane threads' progress and never
        blocks the loop. Safe to cancel: the lanes go on delivering."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with ExitStack() as stack:
            for lane in self._flush_lanes(stack):
                await aio.wait(lane.queue, _remaining(deadline))
        return self._flushed(timeout)

    def _flush_lanes(self, stack: ExitStack) -> list[_Lane]:
        """The lanes with messages pending, running and flushing until ``stack`` closes."""
        lanes = [lane for lane in self._snapshot() if lane.queue.unfinished_tasks]
        if lanes:
            lifecycle.hold(self)
        for lane in lanes:
            lane.ensure_running()
            stack.enter_context(lane.queue.flushing())
        return lanes

    def _flushed(self, timeout: float | None) -> int:
        pending = self._pending()
        if pending:
            logger.warning("flush timed out after %ss with %d messages pending", timeout, pending)
        return pending

    def shutdown(self, timeout: float | None = None) -> int:
        """``flush()``, then stop the lane threads, within one ``timeout``.

        Returns the number of messages still pending. Messages sent afterwards wait for the
        next ``flush()`` or the exit-time flush.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        self.flush(timeout)
        return self._stop(_remaining(deadline))

    def _stop(self, timeout: float | None) -> int:
        """Stop every lane thread, waiting up to ``timeout``; return messages still pending."""
        lanes = self._snapshot()
        for lane in lanes:
            lane.consumer.pause()
        deadline = None if timeout is None else time.monotonic() + timeout
        for lane in lanes:
            if lane.consumer.ident is not None:
                lane.consumer.join(_remaining(deadline))
        pending = self._pending()
        if not pending:
            lifecycle.release(self)
        return pending

    def stats(self) -> StatsSnapshot:
        """``enqueued``, ``delivered``, ``retried``, ``dropped`` (by reason) and ``pending``."""
        lanes = self._snapshot()
        accepted = sum(lane.queue.accepted for lane in lanes)
        return self._stats.snapshot(accepted, self._pending())

    def _snapshot(self) -> list[_Lane]:
        with self._lock:
            return list(self._lanes.values())

    def _pending(self) -> int:
        return sum(lane.queue.unfinished_tasks for lane in self._snapshot())

    def _at_exit(self) -> None:
        """Deliver what is pending within ``shutdown_timeout``; report whatever is left."""
        deadline = time.monotonic() + self._shutdown_timeout
        self.flush(self._shutdown_timeout if self._pending() else 0)
        self._stop(max(deadline - time.monotonic(), lifecycle.EXIT_GRACE))
        leftovers: list[bytes] = []
        for lane in self._snapshot():
            queued = lane.queue.take_all()
            leftovers += queued + lane.consumer.in_flight
            lane.queue.task_done(len(queued))
        if leftovers:
            self._reporter.report(
                "shutdown",
                MessageDropped(
                    "shutdown",
                    f"{len(leftovers)} message(s) not delivered within "
                    f"shutdown_timeout={self._shutdown_timeout}s at interpreter exit",
                ),
                leftovers,
            )


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


__all__ = ["LANE_BATCH", "MAX_BATCH_BYTES", "AsyncBufferedConsumer"]
