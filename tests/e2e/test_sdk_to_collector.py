"""The SDK and the collector together, over real sockets: what the SDK says it sent is what
the collector stored, exactly once, through faults, lost responses and restarts."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from segment_clone import Client
from segment_clone.collector import Collector, Faults, FaultSettings
from segment_clone.errors import APIError

from ..api import get
from ..processes import collector_process


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(host: str, **kwargs: Any) -> Client:
        kwargs.setdefault("upload_interval", 0.05)
        client = Client(kwargs.pop("write_key", "wk"), host=host, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        client.shutdown(timeout=10)


def every_type(client: Client) -> list[dict[str, Any]]:
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    calls = [
        client.identify("u1", {"email": "ada@example.com"}, timestamp=when),
        client.track("u1", "Signed Up", {"plan": "pro", "n": 1.5}, context={"ip": "1.2.3.4"}),
        client.page("u1", "Docs", "Intro", {"path": "/docs"}),
        client.screen(None, "App", "Home", anonymous_id="anon-1"),
        client.group("u1", "acme", {"employees": 12}, integrations={"All": False}),
        client.alias("anon-1", "u1"),
    ]
    assert all(ok for ok, _ in calls)
    return [msg for _, msg in calls]


@pytest.mark.parametrize("gzip", [False, True], ids=["plain", "gzip"])
def test_every_message_type_arrives_exactly_as_the_sdk_built_it(
    collector: Collector, clients: Callable[..., Client], gzip: bool
) -> None:
    client = clients(collector.url, gzip=gzip)
    sent = every_type(client)
    assert client.flush(timeout=10) == 0
    assert collector.events() == sent
    stats = collector.stats()
    assert stats["sources"]["segment"]["types"] == dict.fromkeys(
        ["alias", "group", "identify", "page", "screen", "track"], 1
    )


def test_a_refused_write_key_reaches_on_error_and_nothing_is_stored(
    make_collector: Callable[..., Collector], clients: Callable[..., Client]
) -> None:
    keyed = make_collector(write_keys=["right"])
    errors: list[tuple[BaseException, int]] = []
    client = clients(keyed.url, write_key="wrong", on_error=lambda e, b: errors.append((e, len(b))))
    client.track("u1", "E")
    assert client.flush(timeout=10) == 0
    [(error, count)] = errors
    assert isinstance(error, APIError)
    assert (error.status, error.code, count) == (401, "unauthorized", 1)
    assert keyed.events() == []


def test_injected_faults_are_retried_and_everything_is_stored_once(
    make_collector: Callable[..., Collector], clients: Callable[..., Client], waits: list[float]
) -> None:
    faults = Faults(FaultSettings(fail_rate=0.4, fail_status=503), rng=random.Random(11))
    collector = make_collector(faults=faults)
    client = clients(collector.url, upload_size=10, gzip=True)
    sent = [client.track(f"u{i % 5}", "Clicked", {"i": i})[1]["messageId"] for i in range(200)]
    assert client.flush(timeout=30) == 0
    assert [m["messageId"] for m in collector.events()] == sent
    assert collector.stats()["duplicates"] == 0
    assert faults.injected > 0
    assert client.stats()["retried"] == faults.injected
    assert client.stats()["dropped"] == {}
    assert waits  # the backoff ran, on the virtual clock


def test_rate_limits_with_retry_after_are_honoured(
    make_collector: Callable[..., Collector], clients: Callable[..., Client], waits: list[float]
) -> None:
    faults = Faults(FaultSettings(0.5, 429, retry_after=3), rng=random.Random(5))
    collector = make_collector(faults=faults)
    client = clients(collector.url, upload_size=5)
    sent = [client.identify(f"u{i}", {"i": i})[1]["messageId"] for i in range(40)]
    assert client.flush(timeout=30) == 0
    assert sorted(m["messageId"] for m in collector.events()) == sorted(sent)
    assert faults.injected > 0
    assert waits == [3] * faults.injected


def test_a_lost_response_is_retried_and_deduplicated(
    collector: Collector, clients: Callable[..., Client], waits: list[float]
) -> None:
    """The first answer comes after the client gave up waiting: the retry re-sends messages
    that were already stored, and the collector refuses them as duplicates."""
    collector.faults.update({"delay_ms": 1500})
    client = clients(collector.url, timeout=0.3, upload_size=5)
    sent = [client.track("u1", "Paid", {"n": i})[1]["messageId"] for i in range(5)]
    collector.wait_for(5, timeout=10)  # stored; the answer is still being held back
    collector.faults.update({"delay_ms": 0})
    assert client.flush(timeout=30) == 0
    assert [m["messageId"] for m in collector.events()] == sent
    assert collector.stats()["duplicates"] >= 5
    assert client.stats()["retried"] >= 1


def test_events_survive_a_restart_and_resends_are_still_deduplicated(
    tmp_path: Path, clients: Callable[..., Client]
) -> None:
    db = tmp_path / "events.db"
    with collector_process("--db", str(db)) as first:
        client = clients(first.url)
        sent = every_type(client)
        assert client.shutdown(timeout=10) == 0
        assert first.stop()[0] == 0
    with collector_process("--db", str(db)) as second:
        assert get(second.url, "/api/events")["events"] == sent
        again = clients(second.url)
        for msg in sent[:3]:  # the same messageIds, as a client replaying a spool would send
            again.track(msg["userId"], "Replayed", message_id=msg["messageId"])
        again.track("u1", "New")
        assert again.shutdown(timeout=10) == 0
        stats = get(second.url, "/api/stats")
        assert (stats["total"], stats["duplicates"]) == (7, 3)
        assert second.stop()[0] == 0
