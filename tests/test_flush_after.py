"""``flush_after``: a serverless handler's events are delivered before its result is returned."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import segment_clone as analytics
from segment_clone import Client
from segment_clone.collector import Collector

from .conftest import PATIENT
from .server import Reply, ScriptedServer


def test_a_sync_handler_returns_after_its_events_are_stored(
    patient_client: Client, collector: Collector
) -> None:
    @patient_client.flush_after
    def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
        for i in range(3):
            patient_client.track("u1", "Invoked", {"i": i})
        return {"statusCode": 200}

    assert handler({}, None) == {"statusCode": 200}
    assert len(collector.events(type="track")) == 3  # stored already: no wait needed


def test_an_async_handler_returns_after_its_events_are_stored(
    patient_client: Client, collector: Collector
) -> None:
    @patient_client.flush_after(timeout=5)
    async def handler(event: dict[str, Any]) -> str:
        patient_client.track("u1", "Invoked")
        await asyncio.sleep(0)
        return "done"

    assert asyncio.run(handler({})) == "done"
    assert len(collector.events(type="track")) == 1


def test_a_failing_handler_still_flushes_and_its_error_is_kept(
    patient_client: Client, collector: Collector
) -> None:
    @patient_client.flush_after()
    def handler() -> None:
        patient_client.track("u1", "Before the error")
        raise KeyError("the handler's own")

    with pytest.raises(KeyError, match="the handler's own"):
        handler()
    assert len(collector.events(type="track")) == 1


def test_a_slow_server_costs_at_most_the_timeout_and_the_result_is_kept(
    server: ScriptedServer,
) -> None:
    held = threading.Event()
    server.default = Reply(hold=held)  # the server answers nothing until released
    slow = Client("wk", host=server.url, **PATIENT)
    try:

        @slow.flush_after(timeout=0.2)
        def handler() -> int:
            slow.track("u1", "Slow")
            return 7

        assert handler() == 7
        assert slow.stats()["pending"] == 1  # still owed, to a later flush or the exit hook
    finally:
        held.set()
        slow.shutdown(timeout=5)


def test_a_flush_that_raises_never_reaches_the_caller(
    collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Client):
        def flush(self, timeout: float | None = None) -> int:
            raise OSError("disk on fire")

    broken = Broken("wk", host=collector.url)

    @broken.flush_after
    def handler() -> str:
        return "result"

    assert handler() == "result"
    assert "the flush failed" in caplog.text


def test_the_module_decorator_flushes_the_default_client(analytics_capture: Any) -> None:
    analytics.upload_interval = 60.0

    @analytics.flush_after
    def handler() -> str:
        analytics.track("u1", "Module")  # builds the default client inside the handler
        return "ok"

    assert handler() == "ok"
    assert len(analytics_capture.events(type="track")) == 1


def test_bad_timeouts_are_refused() -> None:
    with pytest.raises(ValueError, match="timeout"):
        analytics.flush_after(timeout=-1)
    with pytest.raises(ValueError, match="timeout"):
        analytics.flush_after("2")
