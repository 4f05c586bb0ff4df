"""The SDKs under test behind one small interface, so that each scenario is written once.

Every SDK is built with the same settings where it has them (host, gzip, queue size, timeout)
and its defaults otherwise. ``Target.open()`` imports the SDK and returns an ``Sdk`` whose
``track(user_id, properties)`` makes the SDK's own call and says whether the event was accepted
(False only when a full queue turned it away), so the queue-full policy is the same for all.

Standard library only: this module runs inside each peer's virtualenv.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from workload import EVENT

WRITE_KEY = "bench-write-key"
LOGGERS = ("segment", "posthog", "rudderstack", "mixpanel")
"""The SDKs' loggers; the driver gives each a handler so queue-full warnings stay off stderr."""


@dataclass(frozen=True)
class Options:
    host: str
    gzip: bool = False
    max_queue_size: int = 10_000
    timeout: float = 15.0
    extra: dict[str, Any] = field(default_factory=dict)
    """Client keywords of a setup, such as ``spool_path`` (segment_clone only)."""

    def client_keywords(self) -> dict[str, Any]:
        """The keywords that Segment-style clients and PostHog's share."""
        return {
            "host": self.host,
            "gzip": self.gzip,
            "max_queue_size": self.max_queue_size,
            "timeout": self.timeout,
            **self.extra,
        }


@dataclass
class Sdk:
    """A running client: what the scenarios call."""

    track: Callable[[str, dict[str, Any]], bool]
    flush: Callable[[], object]
    close: Callable[[], object]


def segment_style(module_name: str) -> Callable[[Options], Sdk]:
    """segment_clone, analytics-python and RudderStack: ``Client.track()`` -> ``(ok, msg)``."""

    def open_sdk(opts: Options) -> Sdk:
        module = importlib.import_module(module_name)
        client = module.Client(WRITE_KEY, **opts.client_keywords())
        call = client.track

        def track(user_id: str, properties: dict[str, Any]) -> bool:
            return call(user_id, EVENT, properties)[0]  # type: ignore[no-any-return]

        return Sdk(track, client.flush, client.join)

    return open_sdk


def open_posthog(opts: Options) -> Sdk:
    """posthog-python: ``capture()`` returns the event's uuid, or None when it was dropped.
    Its default wire protocol, ``v0`` (``POST /batch/``), is named so that no
    ``POSTHOG_CAPTURE_MODE`` in the environment can switch it."""
    from posthog import Posthog

    client = Posthog(WRITE_KEY, capture_mode="v0", **opts.client_keywords())
    call = client.capture

    def track(user_id: str, properties: dict[str, Any]) -> bool:
        return call(EVENT, distinct_id=user_id, properties=properties) is not None

    return Sdk(track, lambda: client.flush(timeout_seconds=None), client.shutdown)


def mixpanel_buffered(module_name: str) -> Callable[[Options], Sdk]:
    """Mixpanel's ``BufferedConsumer`` (upstream's or the facade's): synchronous, so every 50th
    ``track()`` posts a batch on the caller's thread and no call is ever turned away. Upstream
    builds ``https://`` URLs from ``api_host``, hence the explicit endpoint URLs."""

    def open_sdk(opts: Options) -> Sdk:
        module = importlib.import_module(module_name)
        consumer = module.BufferedConsumer(
            events_url=f"{opts.host}/track",
            people_url=f"{opts.host}/engage",
            request_timeout=opts.timeout,
        )
        call = module.Mixpanel(WRITE_KEY, consumer=consumer, **opts.extra).track

        def track(user_id: str, properties: dict[str, Any]) -> bool:
            call(user_id, EVENT, properties)
            return True

        return Sdk(track, consumer.flush, consumer.flush)

    return open_sdk


def open_mixpanel_async(opts: Options) -> Sdk:
    """The facade's ``AsyncBufferedConsumer``: ``track()`` returns nothing, and a full queue
    reports the message to ``on_error`` on the caller's thread, which a thread-local notes."""
    from segment_clone.mixpanel import AsyncBufferedConsumer, Mixpanel

    dropped = threading.local()

    def on_error(error: Exception, messages: list[Any]) -> None:
        dropped.flag = True

    consumer = AsyncBufferedConsumer(
        events_url=f"{opts.host}/track",
        people_url=f"{opts.host}/engage",
        request_timeout=opts.timeout,
        max_queue_size=opts.max_queue_size,
        on_error=on_error,
    )
    call = Mixpanel(WRITE_KEY, consumer=consumer, **opts.extra).track

    def track(user_id: str, properties: dict[str, Any]) -> bool:
        dropped.flag = False
        call(user_id, EVENT, properties)
        return not dropped.flag

    return Sdk(track, consumer.flush, consumer.shutdown)


def open_destinations(*names: str) -> Callable[[Options], Sdk]:
    """segment_clone's ``Client(destinations=[...])``: ``Segment`` and ``Mixpanel``
    destinations, by name, all pointed at the sink. ``track()`` counts as accepted when any
    destination took the event, so a lane that turned it away while another took it would go
    unseen by the producer's retries and the run would wait in vain: such a drop ends the run at
    once instead."""

    def open_sdk(opts: Options) -> Sdk:
        from segment_clone import Client
        from segment_clone.destinations import Mixpanel, Segment

        build = {
            "segment": lambda: Segment(WRITE_KEY, host=opts.host),
            "mixpanel": lambda: Mixpanel(WRITE_KEY, api_host=opts.host),
        }
        dropped: list[str] = []

        def on_error(error: Exception, messages: list[Any]) -> None:
            where = getattr(error, "destination", "?")
            dropped.append(f"{len(messages)} for {where}: {error}")

        keywords = {k: v for k, v in opts.client_keywords().items() if k != "host"}
        client = Client(
            destinations=[build[name]() for name in names], on_error=on_error, **keywords
        )
        call = client.track

        def track(user_id: str, properties: dict[str, Any]) -> bool:
            accepted: bool = call(user_id, EVENT, properties)[0]
            if dropped and accepted:
                raise RuntimeError(f"a destination dropped events: {'; '.join(dropped)}")
            dropped.clear()  # turned away by every destination: the producer calls again
            return accepted

        return Sdk(track, client.flush, client.join)

    return open_sdk


@dataclass(frozen=True)
class Target:
    """One SDK configuration under test."""

    name: str
    label: str
    """How the report names it; ``{version}`` is replaced by the installed version."""
    dist: str
    """Its distribution: the version comes from here, and a peer's virtualenv is named after
    it (``.bench/venv-<dist>``, made by the Makefile)."""
    opener: Callable[[Options], Sdk]
    client_class: str
    """``module:Class`` whose constructor a setup's keywords must fit (``Client(spool_path=)``)."""
    peer: bool = True
    gzip: bool = True
    queues: bool = True
    """Delivers from a background queue: False for Mixpanel's synchronous ``BufferedConsumer``,
    which can neither hold 100k events nor be driven from 4 threads (upstream's is not
    thread-safe), so those scenarios skip it."""
    destinations: tuple[tuple[str, str], ...] = ()
    """For ``Client(destinations=[...])``: each destination's name and the sink path it posts
    to, so that a run times each one's delivery (``events_per_s_<name>``)."""

    def open(self, opts: Options) -> Sdk:
        return self.opener(opts)

    def version(self) -> str:
        return importlib.metadata.version(self.dist)

    def accepts(self, keyword: str) -> bool:
        module_name, _, class_name = self.client_class.partition(":")
        cls = getattr(importlib.import_module(module_name), class_name)
        return keyword in inspect.signature(cls).parameters


CLONE = "segment_clone"
REFERENCE = "analytics-python"
MIXPANEL = "mixpanel"
MIXPANEL_ASYNC = "sc-mixpanel-async"
MIXPANEL_DESTINATION = "sc-dest-mixpanel"
TWO_DESTINATIONS = "sc-dest-both"
SEGMENT_PATH = ("segment", "/v1/batch")
MIXPANEL_PATH = ("mixpanel", "/import")
"""Where a ``Mixpanel`` destination sends the bench's track calls (gzipped, ``strict=1``)."""
TARGETS = {
    t.name: t
    for t in (
        Target(
            CLONE,
            "segment_clone",
            "segment-clone",
            segment_style("segment_clone"),
            "segment_clone:Client",
            peer=False,
        ),
        Target(
            REFERENCE,
            "analytics-python {version}",
            "segment-analytics-python",
            segment_style("segment.analytics"),
            "segment.analytics:Client",
        ),
        Target("posthog", "posthog {version}", "posthog", open_posthog, "posthog:Posthog"),
        Target(
            "rudder",
            "rudder-sdk-python {version}",
            "rudder-sdk-python",
            segment_style("rudderstack.analytics"),
            "rudderstack.analytics:Client",
        ),
        Target(
            "mixpanel",
            "mixpanel {version} (BufferedConsumer)",
            "mixpanel",
            mixpanel_buffered("mixpanel"),
            "mixpanel:Mixpanel",
            gzip=False,
            queues=False,
        ),
        Target(
            "sc-mixpanel",
            "segment_clone.mixpanel (BufferedConsumer)",
            "segment-clone",
            mixpanel_buffered("segment_clone.mixpanel"),
            "segment_clone.mixpanel:Mixpanel",
            peer=False,
            gzip=False,
            queues=False,
        ),
        Target(
            "sc-mixpanel-async",
            "segment_clone.mixpanel (AsyncBufferedConsumer)",
            "segment-clone",
            open_mixpanel_async,
            "segment_clone.mixpanel:Mixpanel",
            peer=False,
            gzip=False,
        ),
        Target(
            MIXPANEL_DESTINATION,
            "segment_clone, `Mixpanel` destination",
            "segment-clone",
            open_destinations("mixpanel"),
            "segment_clone:Client",
            peer=False,
            gzip=False,
            destinations=(MIXPANEL_PATH,),
        ),
        Target(
            TWO_DESTINATIONS,
            "segment_clone, `Segment` + `Mixpanel` destinations",
            "segment-clone",
            open_destinations("segment", "mixpanel"),
            "segment_clone:Client",
            peer=False,
            gzip=False,
            destinations=(SEGMENT_PATH, MIXPANEL_PATH),
        ),
    )
}
