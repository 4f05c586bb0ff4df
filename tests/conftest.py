"""Shared fixtures: a scripted loopback server, clients that are always shut down, collectors.

The ``collector`` and ``analytics_capture`` fixtures come from our own pytest plugin,
``segment_clone.testing``, registered through its entry point.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

import segment_clone
from segment_clone import Client
from segment_clone.collector import Collector
from segment_clone.mixpanel import AsyncBufferedConsumer
from segment_clone.uploader import Uploader

from .keys import make_key_pair
from .server import ScriptedServer


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
    """Record backoff and Retry-After waits; a virtual clock jumps instead of sleeping."""
    recorded: list[float] = []
    clock = [1000.0]

    def fake_wait(self: Uploader, seconds: float) -> None:
        recorded.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(Uploader, "_wait", fake_wait)
    monkeypatch.setattr(Uploader, "_clock", staticmethod(lambda: clock[0]))
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
def module_client(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The module-level proxies (``segment_clone.track`` etc.) send to the scripted server;
    every global a test sets with ``monkeypatch`` is restored, the default client joined."""
    for name, value in {"write_key": "wk", "host": server.url, "default_client": None}.items():
        monkeypatch.setattr(segment_clone, name, value)
    yield
    if segment_clone.default_client is not None:
        segment_clone.default_client.join(timeout=5)
