"""Shared fixtures: a scripted loopback server, clients that are always shut down, collectors.

The ``collector`` and ``analytics_capture`` fixtures come from our own pytest plugin,
``segment_clone.testing``, registered through its entry point.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import pytest

import segment_clone as analytics
from segment_clone import Client, uploader
from segment_clone.collector import Collector
from segment_clone.mixpanel import AsyncBufferedConsumer
from segment_clone.uploader import Uploader

from .keys import make_key_pair
from .server import ScriptedServer

MODULE_GLOBALS = [
    "write_key", "host", "on_error", "debug", "log_handler", "send", "sync_mode",
    "max_queue_size", "gzip", "timeout", "max_retries", "proxies", "thread", "upload_size",
    "upload_interval", "max_total_backoff_duration", "max_rate_limit_duration",
    "shutdown_timeout", "spool_path", "spool_max_bytes", "queue_full_policy",
    "queue_full_timeout", "oauth_client_id", "oauth_client_key", "oauth_key_id",
    "oauth_auth_server", "oauth_scope", "before_send", "destinations",
]  # fmt: skip


@pytest.fixture
def fresh_module() -> Iterator[None]:
    """No default client before the test; the module globals restored and its client
    stopped after it."""
    saved = {name: getattr(analytics, name) for name in MODULE_GLOBALS}
    analytics.default_client = None
    yield
    if analytics.default_client is not None:
        analytics.default_client.join(timeout=5)
    analytics.default_client = None
    for name, value in saved.items():
        setattr(analytics, name, value)


PATIENT = {"upload_interval": 60.0, "upload_size": 1000}
"""Settings under which nothing is sent for a minute on its own: what a test finds stored was
sent by a flush."""


@pytest.fixture
def patient_client(collector: Collector) -> Iterator[Client]:
    """A client of the ``collector`` that sends only when flushed; shut down after the test."""
    client = Client("wk", host=collector.url, **PATIENT)  # type: ignore[arg-type]
    yield client
    client.shutdown(timeout=5)


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.close()


@pytest.fixture
def make_client(server: ScriptedServer) -> Iterator[Callable[..., Client]]:
    """Build clients pointed at the scripted server; each is shut down at teardown."""
    clients: list[Client] = []

    def make(**kwargs: Any) -> Client:
        kwargs.setdefault("host", server.url)
        kwargs.setdefault("upload_interval", 0.05)
        client = Client(kwargs.pop("write_key", "wk"), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.join(timeout=5)


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record backoff and Retry-After waits; a virtual clock jumps instead of sleeping.

    Only the retry engine's view of time is replaced (its ``time`` module reference), so the
    queue and the HTTP client keep real time."""
    recorded: list[float] = []
    clock = [1000.0]

    def fake_wait(self: Uploader, seconds: float) -> bool:
        recorded.append(seconds)
        clock[0] += seconds
        return True

    monkeypatch.setattr(Uploader, "_wait", fake_wait)
    monkeypatch.setattr(uploader, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    return recorded


@pytest.fixture
def make_collector(tmp_path: Path) -> Iterator[Callable[..., Collector]]:
    """In-process collectors with custom settings on free ports; each is closed at teardown."""
    made: list[Collector] = []

    def make(**kwargs: Any) -> Collector:
        kwargs.setdefault("db_path", tmp_path / f"events-{len(made)}.db")
        collector = Collector(port=0, **kwargs).start()
        made.append(collector)
        return collector

    yield make
    for collector in made:
        collector.close()


@pytest.fixture(scope="session")
def key_pair() -> tuple[str, str]:
    """An RSA key pair for OAuth, as PEM: (private, public). Made once: it takes ~100 ms."""
    return make_key_pair()


@pytest.fixture
def async_consumers() -> Iterator[Callable[..., AsyncBufferedConsumer]]:
    """Mixpanel ``AsyncBufferedConsumer``s flushing partial batches after 50 ms; each is shut
    down at teardown."""
    made: list[AsyncBufferedConsumer] = []

    def make(**kwargs: Any) -> AsyncBufferedConsumer:
        kwargs.setdefault("flush_interval", 0.05)
        consumer = AsyncBufferedConsumer(**kwargs)
        made.append(consumer)
        return consumer

    yield make
    for consumer in made:
        consumer.shutdown(timeout=10)


@pytest.fixture
def module_client(server: ScriptedServer, fresh_module: None) -> None:
    """The module-level proxies (``segment_clone.track`` etc.) send to the scripted server;
    ``fresh_module`` restores the globals and joins the default client afterwards."""
    analytics.write_key = "wk"
    analytics.host = server.url
