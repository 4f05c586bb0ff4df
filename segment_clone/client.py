"""The ``Client``: validate each call, build the message, encode it once, hand it off.

Everything on this path runs in the caller's thread, so it does the least possible: type
checks, one dict, one orjson encode (which is also the size check and a frozen copy of the
message) and one lock-protected append. Consumer threads start at the first message.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import datetime
from functools import partial
from pathlib import Path
from threading import get_ident
from typing import Any, Union

import orjson

from . import aio, lifecycle, reentry, serverless
from .compat import LIBRARY
from .consumer import Consumer
from .destinations.mixpanel import Mixpanel
from .destinations.mixpanel_lane import MixpanelLaneConsumer
from .destinations.mixpanel_mapping import Refused
from .destinations.segment import Segment
from .encoding import decode_message, encode_message
from .errors import MessageDropped, ShutdownInterrupted
from .hooks import BeforeSendOption, check_segment_message, hook_chain, run_hooks
from .message_queue import MessageQueue
from .oauth_manager import DEFAULT_AUTH_SERVER, DEFAULT_SCOPE, OauthManager
from .request import post
from .runtime import Runtime, process_lock
from .scopes import Scope, current_frame
from .spool import DEFAULT_MAX_BYTES, Spool, SpoolFull
from .stats import DropReporter, OnError, Stats, StatsSnapshot
from .uploader import (
    DEFAULT_MAX_RATE_LIMIT_DURATION,
    DEFAULT_MAX_TOTAL_BACKOFF_DURATION,
    GiveUp,
    Uploader,
)
from .utils import (
    ID_TYPES,
    guess_timezone,
    new_message_id,
    require,
    reseed_message_ids,
    stringify_id,
    utc_now_iso,
)
from .wire import MAX_MSG_SIZE, batch_cut

__all__ = ["ID_TYPES", "Client", "post", "require", "stringify_id"]

Message = dict[str, Any]
Result = tuple[bool, Message]
QUEUE_FULL_POLICIES = ("drop_newest", "block")
Destination = Union[Segment, Mixpanel]
MIXPANEL_BATCH = 500
"""Messages per batch of a Mixpanel lane unless ``upload_size`` is set: Mixpanel takes 2,000
records per ``/import``, and a request's fixed cost is spread over five times Segment's 100."""


class Client:
    """Sends analytics messages from any thread without blocking on the network."""

    class DefaultConfig:
        write_key = None
        host = None
        on_error = None
        debug = False
        send = True
        sync_mode = False
        max_queue_size = 10000
        gzip = False
        timeout = 15
        max_retries = 10
        proxies = None
        thread = 1
        upload_interval = 0.5
        upload_size = 100
        log_handler = None
        oauth_client_id = None
        oauth_client_key = None
        oauth_key_id = None
        oauth_auth_server = DEFAULT_AUTH_SERVER
        oauth_scope = DEFAULT_SCOPE
        max_total_backoff_duration = DEFAULT_MAX_TOTAL_BACKOFF_DURATION
        max_rate_limit_duration = DEFAULT_MAX_RATE_LIMIT_DURATION
        shutdown_timeout = 5.0
        spool_path = None
        spool_max_bytes = DEFAULT_MAX_BYTES
        queue_full_policy = "drop_newest"
        queue_full_timeout = 1.0
        before_send = None
        destinations = None

    log = logging.getLogger("segment")

    def __init__(
        self,
        write_key: str | None = DefaultConfig.write_key,
        host: str | None = DefaultConfig.host,
        debug: bool = DefaultConfig.debug,
        max_queue_size: int = DefaultConfig.max_queue_size,
        send: bool = DefaultConfig.send,
        on_error: OnError | None = DefaultConfig.on_error,
        gzip: bool = DefaultConfig.gzip,
        max_retries: int = DefaultConfig.max_retries,
        sync_mode: bool = DefaultConfig.sync_mode,
        timeout: float = DefaultConfig.timeout,
        proxies: dict[str, str] | None = DefaultConfig.proxies,
        thread: int = DefaultConfig.thread,
        upload_size: int = DefaultConfig.upload_size,
        upload_interval: float = DefaultConfig.upload_interval,
        log_handler: logging.Handler | None = DefaultConfig.log_handler,
        oauth_client_id: str | None = DefaultConfig.oauth_client_id,
        oauth_client_key: str | None = DefaultConfig.oauth_client_key,
        oauth_key_id: str | None = DefaultConfig.oauth_key_id,
        oauth_auth_server: str = DefaultConfig.oauth_auth_server,
        oauth_scope: str = DefaultConfig.oauth_scope,
        max_total_backoff_duration: float = DefaultConfig.max_total_backoff_duration,
        max_rate_limit_duration: float = DefaultConfig.max_rate_limit_duration,
        shutdown_timeout: float = DefaultConfig.shutdown_timeout,
        spool_path: str | os.PathLike[str] | None = DefaultConfig.spool_path,
        spool_max_bytes: int = DefaultConfig.spool_max_bytes,
        queue_full_policy: str = DefaultConfig.queue_full_policy,
        queue_full_timeout: float = DefaultConfig.queue_full_timeout,
        before_send: BeforeSendOption = DefaultConfig.before_send,
        destinations: Sequence[Destination] | None = DefaultConfig.destinations,
    ) -> None:
        lanes = _resolve_destinations(write_key, host, destinations)
        _check_duration("max_total_backoff_duration", max_total_backoff_duration)
        _check_duration("max_rate_limit_duration", max_rate_limit_duration)
        _check_duration("shutdown_timeout", shutdown_timeout)
        _check_duration("queue_full_timeout", queue_full_timeout)
        if queue_full_policy not in QUEUE_FULL_POLICIES:
            choices = " or ".join(map(repr, QUEUE_FULL_POLICIES))
            raise ValueError(f"queue_full_policy must be {choices}, got: {queue_full_policy!r}")
        if spool_path is not None and sync_mode:
            raise ValueError(
                "spool_path needs the background path; sync_mode sends before returning"
            )
        _check_positive("timeout", timeout)
        _check_positive("upload_interval", upload_interval)
        _check_count("max_queue_size", max_queue_size, 1)
        _check_count("max_retries", max_retries, 0)
        _check_count("thread", thread, 1)
        _check_count("upload_size", upload_size, 1)
        if on_error and not callable(on_error):
            raise AssertionError(f"on_error must be callable, got: {type(on_error).__name__}")

        destination = lanes[0]
        self.destination = destination
        """Where this client's own queue goes; ``destinations`` beyond the first get a lane
        each (``_lanes``), built with the same settings."""
        self.write_key = destination.write_key if isinstance(destination, Segment) else None
        self.host = destination.host if isinstance(destination, Segment) else host
        self._refusal = destination.refusal if isinstance(destination, Mixpanel) else None
        self._label = None if destinations is None else destination.label
        self._message_limit = (
            MAX_MSG_SIZE if any(isinstance(d, Segment) for d in lanes) else sys.maxsize
        )
        self.debug = debug
        self.send = send
        self.sync_mode = sync_mode
        self.gzip = gzip
        self.timeout = timeout
        self.proxies = proxies
        self.max_retries = max_retries
        self.upload_size = (
            MIXPANEL_BATCH
            if isinstance(destination, Mixpanel) and upload_size == self.DefaultConfig.upload_size
            else upload_size
        )
        self.upload_interval = upload_interval
        self.max_total_backoff_duration = max_total_backoff_duration
        self.max_rate_limit_duration = max_rate_limit_duration
        self.shutdown_timeout = shutdown_timeout
        self.max_queue_size = max_queue_size
        self.queue_full_policy = queue_full_policy
        self.queue_full_timeout = queue_full_timeout
        self._before_send = hook_chain(before_send)
        self.oauth_manager: OauthManager | None = None
        if oauth_client_id and oauth_client_key and oauth_key_id:
            self.oauth_manager = OauthManager(
                oauth_client_id,
                oauth_client_key,
                oauth_key_id,
                oauth_auth_server,
                oauth_scope,
                timeout,
                max_retries,
            )
        _configure_logging(self.log, debug, log_handler)
        self._spool = Spool(spool_path, spool_max_bytes) if spool_path and send else None
        self._thread_count = thread
        self._rt = self._new_runtime(on_error)
        """Owner: the process of ``_rt.pid``; replaced whole, by one assignment, in a fork."""
        self._lanes: list[Client] = []
        """One client per further destination: its own queue, consumers, retry budget, stats,
        spool and lifecycle, fed by this client's hand-off (``_fan_out``)."""
        labels = [destination.label]
        for other in lanes[1:]:
            label = _unique(other.label, labels)
            labels.append(label)
            lane = Client(
                debug=debug,
                max_queue_size=max_queue_size,
                send=send,
                on_error=on_error,
                gzip=gzip,
                max_retries=max_retries,
                sync_mode=sync_mode,
                timeout=timeout,
                proxies=proxies,
                thread=thread,
                upload_size=upload_size,
                upload_interval=upload_interval,
                oauth_client_id=oauth_client_id,
                oauth_client_key=oauth_client_key,
                oauth_key_id=oauth_key_id,
                oauth_auth_server=oauth_auth_server,
                oauth_scope=oauth_scope,
                max_total_backoff_duration=max_total_backoff_duration,
                max_rate_limit_duration=max_rate_limit_duration,
                shutdown_timeout=shutdown_timeout,
                spool_path=None if spool_path is None else Path(spool_path) / f".{label}",
                spool_max_bytes=spool_max_bytes,
                queue_full_policy=queue_full_policy,
                queue_full_timeout=queue_full_timeout,
                destinations=[other],
            )
            lane._label = label
            lane._rt.reporter.destination = label
            self._lanes.append(lane)

        if self._spool is not None:
            self._replay(self._spool.adopt_orphans())

    def _new_runtime(self, on_error: OnError | None) -> Runtime:
        """Everything a process must not share with its parent: queue, locks, counters and
        threads. Built at construction and again in a forked child."""
        stats = Stats()
        rt = Runtime(
            MessageQueue(self.max_queue_size, batch_size=self.upload_size, batch_cut=batch_cut),
            stats,
            DropReporter(stats, on_error, self.log, self._label),
        )
        if self.sync_mode:
            rt.sync_sender = (
                _SyncSender(**self._uploader_settings(rt))
                if isinstance(self.destination, Segment)
                else self._new_consumers(rt, 1)[0]  # not started: its deliver() is all we use
            )
        else:
            rt.consumers = self._new_consumers(rt, self._thread_count)
        return rt

    def _runtime(self) -> Runtime:
        """This process's runtime: a new one if the process was forked, even without
        ``os.register_at_fork`` hooks (uWSGI without ``--py-call-uwsgi-fork-hooks``)."""
        rt = self._rt
        if rt.pid != os.getpid():
            rt = self._adopt_process()
        return rt

    def _adopt_process(self) -> Runtime:
        """In a forked child: the parent's queued messages are the parent's to send. Built
        under this process's own lock, published by one assignment."""
        pid = os.getpid()
        with process_lock(pid):
            rt = self._rt
            if rt.pid == pid:  # another thread of this process adopted it first
                return rt
            reseed_message_ids()
            if self.oauth_manager is not None:
                self.oauth_manager.reset_after_fork()
            if self._spool is not None:
                self._spool.reopen_after_fork()
            rt = self._rt = self._new_runtime(rt.reporter.on_error)
            return rt

    def _after_fork(self) -> None:
        """The lifecycle registry's fork hook, in the child."""
        self._adopt_process()

    @property
    def queue(self) -> MessageQueue:
        """This process's queue (upstream's attribute, read by code written for it)."""
        return self._runtime().queue

    @property
    def consumers(self) -> list[Consumer] | None:
        """This process's consumer threads; None in ``sync_mode``."""
        return self._runtime().consumers

    @property
    def on_error(self) -> OnError | None:
        return self._rt.reporter.on_error

    @on_error.setter
    def on_error(self, value: OnError | None) -> None:
        self._rt.reporter.on_error = value
        for lane in self._lanes:
            lane.on_error = value

    # -- message methods (positional order matches segment.analytics) -------------------------

    def identify(
        self,
        user_id: Any = None,
        traits: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        timestamp: datetime | None = None,
        anonymous_id: Any = None,
        integrations: dict[str, Any] | None = None,
        message_id: Any = None,
    ) -> Result:
        traits = traits or {}
        _require_ids(user_id, anonymous_id)
        if type(traits) is not dict:
            require("traits", traits, dict)
        return self._enqueue(
            {
                "integrations": integrations or {},
                "anonymousId": anonymous_id,
                "timestamp": timestamp,
                "context": context or {},
                "type": "identify",
                "userId": user_id,
                "traits": traits,
                "messageId": message_id,
            }
        )

    def track(
        self,
        user_id: Any = None,
        event: str | None = None,
        properties: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        timestamp: datetime | None = None,
        anonymous_id: Any = None,
        integrations: dict[str, Any] | None = None,
        message_id: Any = None,
    ) -> Result:
        properties = properties or {}
        _require_ids(user_id, anonymous_id)
        if type(properties) is not dict:
            require("properties", properties, dict)
        if type(event) is not str:
            require("event", event, str)
        return self._enqueue(
            {
                "integrations": integrations or {},
                "anonymousId": anonymous_id,
                "properties": properties,
                "timestamp": timestamp,
                "context": context or {},
                "userId": user_id,
                "type": "track",
                "event": event,
                "messageId": message_id,
            }
        )

    def alias(
        self,
        previous_id: Any = None,
        user_id: Any = None,
        context: dict[str, Any] | None = None,
        timestamp: datetime | None = None,
        integrations: dict[str, Any] | None = None,
        message_id: Any = None,
    ) -> Result:
        require("previous_id", previous_id, ID_TYPES)
        require("user_id", user_id, ID_TYPES)
        return self._enqueue(
            {
                "integrations": integrations or {},
                "previousId": previous_id,
                "timestamp": timestamp,
                "context": context or {},
                "userId": user_id,
                "type": "alias",
                "messageId": message_id,
                "anonymousId": None,  # upstream appends it, always null
            }
        )

    def group(
        self,
        user_id: Any = None,
        group_id: Any = None,
        traits: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        timestamp: datetime | None = None,
        anonymous_id: Any = None,
        integrations: dict[str, Any] | None = None,
        message_id: Any = None,
    ) -> Result:
        traits = traits or {}
        require("group_id", group_id, ID_TYPES)
        if type(traits) is not dict:
            require("traits", traits, dict)
        _require_ids(user_id, anonymous_id)
        return self._enqueue(
            {
                "integrations": integrations or {},
                "anonymousId": anonymous_id,
                "timestamp": timestamp,
                "groupId": group_id,
                "context": context or {},
                "userId": user_id,
                "traits": traits,
                "type": "group",
                "messageId": message_id,
            }
        )

    def page(
        self,
        user_id: Any = None,
        category: str | None = None,
        name: str | None = None,
        properties: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        timestamp: datetime | None = None,
        anonymous_id: Any = None,
        integrations: dict[str, Any] | None = None,
        message_id: Any = None,
    ) -> Result:
        return self._page_or_screen(
            "page", user_id, category, name, properties, context, timestamp, anonymous_id,
            integrations, message_id,
        )  # fmt: skip

    def screen(
        self,
        user_id: Any = None,
        category: str | None = None,
        name: str | None = None,
        properties: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        timestamp: datetime | None = None,
        anonymous_id: Any = None,
        integrations: dict[str, Any] | None = None,
        message_id: Any = None,
    ) -> Result:
        return self._page_or_screen(
            "screen", user_id, category, name, properties, context, timestamp, anonymous_id,
            integrations, message_id,
        )  # fmt: skip

    def _page_or_screen(
        self,
        type_: str,
        user_id: Any,
        category: str | None,
        name: str | None,
        properties: dict[str, Any] | None,
        context: dict[str, Any] | None,
        timestamp: datetime | None,
        anonymous_id: Any,
        integrations: dict[str, Any] | None,
        message_id: Any,
    ) -> Result:
        properties = properties or {}
        _require_ids(user_id, anonymous_id)
        if type(properties) is not dict:
            require("properties", properties, dict)
        if name:
            require("name", name, str)
        if category:
            require("category", category, str)
        return self._enqueue(
            {
                "integrations": integrations or {},
                "anonymousId": anonymous_id,
                "properties": properties,
                "timestamp": timestamp,
                "category": category,
                "context": context or {},
                "userId": user_id,
                "type": type_,
                "name": name,
                "messageId": message_id,
            }
        )

    # -- the hand-off -----------------------------------------------------------------------

    def _enqueue(self, msg: Message) -> Result:
        rt = self._rt
        if rt.pid != os.getpid():  # forked, maybe without fork hooks (uWSGI without its flag)
            rt = self._adopt_process()
        timestamp = msg["timestamp"]
        if timestamp is None:
            msg["timestamp"] = utc_now_iso()
        else:
            require("timestamp", timestamp, datetime)
            msg["timestamp"] = guess_timezone(timestamp).isoformat(timespec="milliseconds")
        message_id = msg["messageId"]
        msg["messageId"] = new_message_id() if message_id is None else stringify_id(message_id)
        context = msg["context"]
        if type(context) is not dict:
            require("context", context, dict)
        if type(msg["integrations"]) is not dict:
            require("integrations", msg["integrations"], dict)
        frame = current_frame()
        if frame is None:
            msg["context"] = {**context, "library": LIBRARY.copy()}
        else:
            frame.apply(msg)
            msg["context"] = {**frame.context, **context, "library": LIBRARY.copy()}
        user_id = msg["userId"]
        if user_id is not None and type(user_id) is not str:
            msg["userId"] = str(user_id)
        anonymous_id = msg["anonymousId"]
        if anonymous_id is not None and type(anonymous_id) is not str:
            msg["anonymousId"] = str(anonymous_id)

        data, encoded = encode_message(msg)
        if get_ident() != reentry.main.ident:  # only the main thread runs signal handlers
            return self._hand_off(rt, data, encoded, encoded is msg)
        main = reentry.main
        if main.busy:  # a signal handler, interrupting a hand-off: take no lock now
            main.deferred.append(partial(self._hand_off_later, data, encoded, encoded is msg))
            return True, encoded
        main.busy = True
        try:
            return self._hand_off(rt, data, encoded, encoded is msg)
        finally:
            main.busy = False
            if main.deferred:
                reentry.drain()

    def _hand_off_later(self, data: bytes, msg: Message, exact: bool) -> None:
        """The hand-off of a call a signal handler made inside another: run by that other
        call once it is done. Its caller already has ``(True, msg)``; a drop is reported."""
        rt = self._runtime()
        try:
            self._hand_off(rt, data, msg, exact)
        except Exception as e:
            rt.reporter.report("error", e, [msg])

    def _hand_off(self, rt: Runtime, data: bytes, encoded: Message, exact: bool) -> Result:
        """``before_send``, then the queue (or ``sync_mode``'s send); one per thread at a time.
        ``exact``: orjson encoded the message as it was, so reading ``data`` back gives it."""
        if self._before_send is not None:
            # What orjson wrote it reads back exactly; the sanitized path may hold integers
            # beyond 64 bits or escaped lone surrogates, which only the json module keeps.
            copy = orjson.loads(data) if exact else decode_message(data)
            final = run_hooks(
                self._before_send,
                copy,
                check_segment_message,
                rt.reporter,
                self.debug,
            )
            if final is None:
                return False, encoded
            data, encoded = encode_message(final)
        msg = encoded
        if len(data) > self._message_limit:
            raise RuntimeError(
                f"Message exceeds {MAX_MSG_SIZE // 1024}kb limit: {len(data)} bytes "
                f"({msg['type']} {msg.get('event') or msg['messageId']!r})"
            )
        if not self.send:
            return True, msg
        if self._lanes:
            return self._fan_out(rt, data, msg)
        return self._deliver(rt, data, msg)

    def _fan_out(self, rt: Runtime, data: bytes, msg: Message) -> Result:
        """Hand the same encoded message to this client's queue and to each lane's: accepted
        if any destination accepted it. Each lane answers for its own process (fork)."""
        accepted = self._deliver(rt, data, msg)[0]
        for lane in self._lanes:
            accepted = lane._deliver(lane._runtime(), data, msg)[0] or accepted
        return accepted, msg

    def _deliver(self, rt: Runtime, data: bytes, msg: Message) -> Result:
        """Queue (or, in ``sync_mode``, send) one message for this client's destination."""
        if self._refusal is not None:
            reason = self._refusal(msg, len(data))
            if reason is not None:
                rt.reporter.report("refused", Refused(reason), [msg])
                return False, msg
        if rt.sync_sender is not None:
            return self._send_now(rt, data, msg)
        if not rt.enlisted and not self._enlist(rt):
            return self._refuse_closed(rt, msg)
        if self._spool is not None:
            try:
                self._spool.add(data)
            except SpoolFull as e:
                rt.reporter.report("spool_full", MessageDropped("spool_full", str(e)), [msg])
                return False, msg
        try:
            if self.queue_full_policy == "block":
                rt.queue.put(data, self.queue_full_timeout)
            else:
                rt.queue.put_nowait(data)
        except queue.Full:
            if self._spool is not None:
                self._spool.remove([data])
            rt.reporter.report(
                "queue_full",
                MessageDropped("queue_full", f"queue is full ({rt.queue.maxsize} messages)"),
                [msg],
            )
            return False, msg
        if not rt.enlisted:  # join() or the exit hook ran between our check and our put
            self._recheck_after_put(rt)
        return True, msg

    def _enlist(self, rt: Runtime) -> bool:
        """Join the lifecycle registry (and start the consumers unless ``join()`` paused
        them); False once the exit hook has run, when nothing would deliver."""
        with rt.lock:
            if rt.closed or not lifecycle.register(self):
                rt.closed = True
                return False
            if not rt.paused:
                self._start_consumers(rt)
            rt.enlisted = True
            return True

    def _recheck_after_put(self, rt: Runtime) -> None:
        """Our put raced ``join()`` or the exit hook. ``join()`` clears ``enlisted`` before it
        counts what is pending, and the exit hook before its sweep, so either they saw our
        message or we see the flag: enlist again, or sweep and settle it ourselves."""
        if not self._enlist(rt):
            self._settle(rt, rt.queue.take_all(), [])

    def _refuse_closed(self, rt: Runtime, msg: Message) -> Result:
        """After the exit hook has drained, nothing would deliver a queued message."""
        rt.reporter.report(
            "shutdown",
            MessageDropped("shutdown", "tracked after the interpreter-exit flush"),
            [msg],
        )
        return False, msg

    def _replay(self, orphans: list[bytes]) -> None:
        """Queue what an earlier process left in the spool: at once as far as the queue has
        room (so that a ``flush()`` right away sees them), the rest from a thread."""
        if not orphans:
            return
        self.log.info("replaying %d message(s) left in the spool by an earlier run", len(orphans))
        rt = self._runtime()
        self._start(rt)
        fits = min(len(orphans), rt.queue.maxsize - rt.queue.qsize())
        for data in orphans[:fits]:
            rt.queue.put_nowait(data)
        if fits < len(orphans):
            rt.queue.promise(len(orphans) - fits)  # a flush from now on waits for them too
            feeder = threading.Thread(
                target=_feed, args=(rt.queue, orphans[fits:]), name="segment-clone-replay"
            )
            feeder.daemon = True  # never holds up interpreter exit; the rows stay spooled
            feeder.start()

    def _send_now(self, rt: Runtime, data: bytes, msg: Message) -> Result:
        """``sync_mode``: deliver on the caller's thread with the same retry policy, waiting
        out rate limits here instead of in the queue."""
        assert rt.sync_sender is not None
        rt.stats.add("enqueued")
        try:
            while not rt.sync_sender.deliver([data]):
                pass
        except GiveUp as e:
            rt.reporter.report(e.reason, e.cause, [msg])
            return False, msg
        except ShutdownInterrupted as e:
            rt.reporter.report("shutdown", e, [msg])
            return False, msg
        rt.stats.add("delivered")
        return True, msg

    # -- consumers --------------------------------------------------------------------------

    def _uploader_settings(self, rt: Runtime) -> dict[str, Any]:
        destination = self.destination
        settings: dict[str, Any] = {
            "retries": self.max_retries,
            "timeout": self.timeout,
            "max_total_backoff_duration": self.max_total_backoff_duration,
            "max_rate_limit_duration": self.max_rate_limit_duration,
            "stats": rt.stats,
        }
        if isinstance(destination, Mixpanel):
            return {"destination": destination, **settings}
        return {
            "write_key": self.write_key,
            "host": self.host,
            "gzip": self.gzip,
            "proxies": self.proxies,
            "oauth_manager": self.oauth_manager,
            **settings,
        }

    def _new_consumers(self, rt: Runtime, count: int, **settings: Any) -> list[Consumer]:
        kind = MixpanelLaneConsumer if isinstance(self.destination, Mixpanel) else Consumer
        return [
            kind(
                rt.queue,
                upload_size=self.upload_size,
                upload_interval=self.upload_interval,
                reporter=rt.reporter,
                spool=self._spool,
                **(self._uploader_settings(rt) | settings),
            )
            for _ in range(count)
        ]

    def _start(self, rt: Runtime) -> None:
        """Start the consumer threads, replacing any stopped by ``join()`` or dead."""
        with rt.lock:
            lifecycle.register(self)
            rt.paused = False
            self._start_consumers(rt)
            rt.enlisted = not rt.closed

    def _start_consumers(self, rt: Runtime) -> None:
        """Under ``rt.lock``. A stopped consumer still in a request is kept in ``retired``
        until it ends, so that the exit hook waits for its batch and settles it."""
        if rt.consumers is None:
            return
        rt.retired = [c for c in rt.retired if c.is_alive()]
        for i, consumer in enumerate(rt.consumers):
            if consumer.running and consumer.is_alive():
                continue
            if not (consumer.running and consumer.ident is None):  # stopped by join(), or dead
                if consumer.is_alive():
                    rt.retired.append(consumer)
                consumer = rt.consumers[i] = self._new_consumers(rt, 1)[0]
            try:
                consumer.start()
            except RuntimeError as e:  # "can't start new thread", e.g. at interpreter exit
                self.log.warning("could not start a consumer thread: %s", e)
        lifecycle.hold(self)

    # -- lifecycle --------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> int:
        """Send every message accepted before this call, and wait for each to be delivered or
        reported (messages tracked meanwhile do not extend the wait).

        Returns the number of those still pending: 0 unless ``timeout`` (seconds) ran out.
        Restarts consumers stopped by ``join()`` so that nothing queued is stranded. With
        several destinations, every lane flushes at once, within the one ``timeout``.
        """
        if self._lanes:
            return self._flush_lanes(timeout)
        rt = self._runtime()
        if not self._flush_needed(rt):
            return 0
        mark = rt.queue.mark()
        with rt.queue.flushing():
            rt.queue.join(timeout, upto=mark)
        return self._flushed(rt, timeout, mark)

    def _flush_lanes(self, timeout: float | None) -> int:
        """``flush()`` of every destination's queue: all of them send while we wait."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with ExitStack() as stack:
            waits = self._flushing(stack)
            for _, rt, mark in waits:
                rt.queue.join(_remaining(deadline), upto=mark)
        return sum(engine._flushed(rt, timeout, mark) for engine, rt, mark in waits)

    def _flushing(self, stack: ExitStack) -> list[tuple[Client, Runtime, int]]:
        """Every destination's engine with messages pending, its runtime and its flush mark;
        each sends partial batches at once until ``stack`` closes."""
        waits = []
        for engine in (self, *self._lanes):
            rt = engine._runtime()
            if engine._flush_needed(rt):
                waits.append((engine, rt, rt.queue.mark()))
                stack.enter_context(rt.queue.flushing())
        return waits

    def _flush_needed(self, rt: Runtime) -> bool:
        """True if messages are pending; then the consumers are (re)started to send them."""
        if rt.consumers is None or not rt.queue.unfinished_tasks:
            return False
        self._start(rt)
        return True

    def _flushed(self, rt: Runtime, timeout: float | None, mark: int | None = None) -> int:
        pending = rt.queue.pending_before(mark)
        if not pending:
            self.log.debug("successfully flushed")
        else:
            self.log.warning("flush timed out after %ss with %d messages pending", timeout, pending)
        return pending

    def join(self, timeout: float | None = None) -> int:
        """Stop the consumer threads (a pending retry wait is cut short) and wait for them.

        Messages still queued stay queued: a later ``flush()`` or the exit hook sends them.
        Returns the number of messages still pending.
        """
        return self._join_engines((self, *self._lanes), timeout)

    def _join_engines(self, engines: Sequence[Client], timeout: float | None) -> int:
        """``join()`` of these clients' consumers: all asked to stop first, then waited for
        within the one ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        runtimes = [(engine, engine._runtime()) for engine in engines]
        stopping = [c for engine, rt in runtimes for c in engine._pause(rt)]
        for consumer in stopping:
            consumer.join(_remaining(deadline))
        return sum(engine._joined(rt) for engine, rt in runtimes)

    def _pause(self, rt: Runtime) -> list[Consumer]:
        """Ask every consumer thread to stop; return those that were started."""
        with rt.lock:
            rt.paused = True
            consumers = [*(rt.consumers or []), *rt.retired]
        for consumer in consumers:
            consumer.pause()
        return [consumer for consumer in consumers if consumer.ident is not None]

    def _joined(self, rt: Runtime) -> int:
        if self.oauth_manager is not None:
            self.oauth_manager.stop()
        with rt.lock:
            rt.enlisted = False  # before counting: see _recheck_after_put
            pending = rt.queue.unfinished_tasks
            if not pending:
                lifecycle.unregister(self)  # a later call enlists it again
        return pending

    def shutdown(self, timeout: float | None = None) -> int:
        """``flush()`` then ``join()``, sharing one ``timeout``; returns messages still pending."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.flush(timeout)
        return self.join(_remaining(deadline))

    # -- the same lifecycle for asyncio: awaits progress, never blocks the event loop ------------

    async def aflush(self, timeout: float | None = None) -> int:
        """``flush()`` for a running event loop: the loop keeps running while it waits.

        Safe to cancel (for example by ``asyncio.wait_for``): the consumers go on delivering.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with ExitStack() as stack:
            waits = self._flushing(stack)
            for _, rt, _ in waits:
                await aio.wait(rt.queue, _remaining(deadline))
        return sum(engine._flushed(rt, timeout) for engine, rt, _ in waits)

    async def ajoin(self, timeout: float | None = None) -> int:
        """``join()`` for a running event loop; returns the number of messages still pending."""
        deadline = None if timeout is None else time.monotonic() + timeout
        runtimes = [(engine, engine._runtime()) for engine in (self, *self._lanes)]
        stopping = [c for engine, rt in runtimes for c in engine._pause(rt)]
        for consumer in stopping:
            await aio.wait(consumer.stopped, _remaining(deadline))
        return sum(engine._joined(rt) for engine, rt in runtimes)

    async def ashutdown(self, timeout: float | None = None) -> int:
        """``shutdown()`` for a running event loop: ``aflush()`` then ``ajoin()`` within one
        ``timeout``. Idempotent, and safe to cancel: what is pending stays owed, to a later
        ``ashutdown()``, ``flush()`` or the exit hook."""
        deadline = None if timeout is None else time.monotonic() + timeout
        await self.aflush(timeout)
        return await self.ajoin(_remaining(deadline))

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Leaving ``async with`` shuts down within ``shutdown_timeout``, as the exit hook does;
        what is still pending then is left to the exit hook."""
        await self.ashutdown(self.shutdown_timeout)

    # -- where applications run -------------------------------------------------------------

    scope = staticmethod(Scope)
    """``segment_clone.scope``: a scope belongs to the work in progress (a request, a task), so
    it applies to the messages of every client used inside it."""

    def flush_after(
        self, handler: Any = None, *, timeout: float = serverless.DEFAULT_TIMEOUT
    ) -> Any:
        """Decorate a handler (sync or async) so that this client flushes, within ``timeout``
        seconds, before the handler's result is returned; see ``segment_clone.flush_after``."""
        return serverless.decorator(lambda: self, handler, timeout)

    def stats(self) -> StatsSnapshot:
        """Counters since this client was created: enqueued, delivered, retried, dropped
        (by reason) and pending (accepted, not yet delivered or reported). With several
        destinations, these are the first one's, and ``destinations`` has each one's."""
        snapshot = self._lane_stats()
        if self._lanes:
            snapshot["destinations"] = {
                engine._label or engine.destination.label: engine._lane_stats()
                for engine in (self, *self._lanes)
            }
        return snapshot

    def _lane_stats(self) -> StatsSnapshot:
        rt = self._runtime()
        return rt.stats.snapshot(rt.queue.accepted, rt.queue.unfinished_tasks)

    def _at_exit(self) -> None:
        """Deliver what is pending within ``shutdown_timeout``; then spool or report the rest.
        Consumers stopped by ``join()`` (or dead) are not restarted: Python 3.12 and later
        refuse new threads in exit hooks, so what they left queued goes out from this thread."""
        rt = self._rt
        if rt.pid != os.getpid():
            return  # forked without hooks and never used here: nothing of ours to flush
        deadline = time.monotonic() + self.shutdown_timeout
        if rt.queue.unfinished_tasks:
            if any(c.running and c.is_alive() for c in rt.consumers or []):
                with rt.queue.flushing():
                    rt.queue.join(self.shutdown_timeout)
            self._join_engines((self,), max(deadline - time.monotonic(), lifecycle.EXIT_GRACE))
            self._deliver_here(rt, deadline)
        else:
            self._join_engines((self,), 0)
        with rt.lock:  # closed before the sweep: a put after it sees the flag, sweeps itself
            rt.closed = True
            rt.enlisted = False
            consumers = [*(rt.consumers or []), *rt.retired]
        in_flight = [m for c in consumers for m in c.in_flight]
        self._settle(rt, rt.queue.take_all(), in_flight)
        if self._spool is not None:  # its logs cut to their lines; nothing left if all finished
            self._spool.close(keep_locks=True)

    def _deliver_here(self, rt: Runtime, deadline: float) -> None:
        """Send what is queued from the calling (exiting) thread until ``deadline``; each
        request, backoff and rate-limit wait is held to what is left of it."""
        left = deadline - time.monotonic()
        if left <= 0 or rt.consumers is None or not rt.queue.qsize():
            return
        (sender,) = self._new_consumers(
            rt,
            1,
            timeout=min(self.timeout, left),
            max_total_backoff_duration=left,
            max_rate_limit_duration=left,
        )
        with rt.queue.flushing():
            while rt.queue.qsize() and time.monotonic() < deadline:
                sender.upload()

    def _settle(self, rt: Runtime, queued: list[bytes], in_flight: list[bytes]) -> None:
        """Account for what is left at exit: ``queued`` (taken off the queue) and the batches
        stuck in a request: kept in the spool for the next run, or reported."""
        leftovers = queued + in_flight
        spool = self._spool
        lost = leftovers if spool is None else spool.unspooled(leftovers)
        if spool is not None and len(lost) < len(leftovers):
            self.log.warning(
                "%d message(s) not delivered within shutdown_timeout=%ss kept in the spool %s "
                "for the next run",
                len(leftovers) - len(lost),
                self.shutdown_timeout,
                spool.path,
            )
        if lost:  # no spool, or one that could not hold them (see docs/spool-faults.md)
            rt.reporter.report(
                "shutdown",
                MessageDropped(
                    "shutdown",
                    f"{len(lost)} message(s) not delivered within "
                    f"shutdown_timeout={self.shutdown_timeout}s at interpreter exit",
                ),
                lost,
            )
        rt.queue.task_done(len(queued))


class _SyncSender(Uploader):
    """``sync_mode``'s sender: each attempt calls this module's ``post``, looked up at call
    time, so ``mock.patch("segment_clone.client.post")`` works as it did upstream."""

    def _send(self, batch: list[Any], retry_count: int) -> Any:
        return self._post_with(post, batch, retry_count)


def _resolve_destinations(
    write_key: str | None, host: str | None, destinations: Sequence[Destination] | None
) -> list[Destination]:
    """The client's destinations, first its own: ``write_key`` alone is ``Segment(write_key,
    host)``, as it always was; with ``destinations``, ``write_key`` adds that Segment source
    in front."""
    if destinations is None:
        require("write_key", write_key, str)
        assert isinstance(write_key, str)  # narrowed for type checkers; require() raised
        return [Segment(write_key, host)]
    if isinstance(destinations, (str, bytes)) or not isinstance(destinations, Sequence):
        raise TypeError("destinations must be a list of destination objects")
    for destination in destinations:
        if not isinstance(destination, (Segment, Mixpanel)):
            raise TypeError(
                "each destination must be segment_clone.destinations.Segment or Mixpanel, "
                f"got: {type(destination).__name__}"
            )
    resolved = list(destinations)
    if write_key is not None:
        if any(isinstance(d, Segment) for d in resolved):
            raise ValueError("pass write_key or a Segment destination, not both")
        resolved.insert(0, Segment(write_key, host))
    elif host is not None:
        raise ValueError("host is write_key's; with destinations, use Segment(write_key, host=...)")
    if not resolved:
        raise ValueError("destinations is empty: name at least one, or pass write_key")
    return resolved


def _unique(label: str, taken: list[str]) -> str:
    """``label``, or ``label-2``, ``label-3``... when another destination has it."""
    n, found = 1, label
    while found in taken:
        n += 1
        found = f"{label}-{n}"
    return found


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _feed(queue: MessageQueue, messages: list[bytes]) -> None:
    """Put ``messages`` on ``queue`` as room frees up (the spool replay beyond queue size)."""
    for data in messages:
        queue.put(data, promised=True)


_ID_OR_UUID = (*ID_TYPES, uuid.UUID)


def _require_ids(user_id: Any, anonymous_id: Any) -> None:
    """At least one of the ids, as a number, str or UUID (falsy ids are refused, as upstream),
    unless both are omitted inside a scope that has an identity."""
    value = user_id or anonymous_id
    if type(value) is str:
        return
    if user_id is None and anonymous_id is None:  # before isinstance: an ABC check is slow
        frame = current_frame()
        if frame is not None and frame.has_identity():
            return
    if not isinstance(value, _ID_OR_UUID):
        require("user_id or anonymous_id", value, _ID_OR_UUID)


def _check_duration(name: str, value: Any) -> None:
    if value is None or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, got: {value!r}")


def _check_positive(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, got: {value!r}")


def _check_count(name: str, value: Any, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got: {value!r}")


class _DebugHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler ``debug=True`` adds, so that a second debug client adds no other."""


def _configure_logging(
    logger: logging.Logger, debug: bool, log_handler: logging.Handler | None
) -> None:
    if log_handler is not None and log_handler not in logger.handlers:
        logger.addHandler(log_handler)
    if debug:
        logger.setLevel(logging.DEBUG)
        if log_handler is None and not any(isinstance(h, _DebugHandler) for h in logger.handlers):
            logger.addHandler(_DebugHandler())
