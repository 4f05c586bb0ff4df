"""The Mixpanel facade in asyncio applications, and its ``before_send`` hooks.

``AsyncBufferedConsumer.aflush()`` awaits the lanes' progress in a real loop; the ``Mixpanel``
methods stay plain calls that never wait on the network. Hooks behave as on ``Client``.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from collections import Counter
from typing import Any, Callable

import pytest

from segment_clone.errors import MessageDropped
from segment_clone.mixpanel import AsyncBufferedConsumer, Mixpanel

from ..server import Reply, ScriptedServer
from ..ticker import LONGEST_GAP, Ticker
from .conftest import OK, Log, delivered

MakeAsync = Callable[..., AsyncBufferedConsumer]
Message = dict[str, Any]


def scrub_email(message: Message) -> Message:
    for values in (message.get("properties"), message.get("$set")):
        if values is not None:
            values.pop("email", None)
    return message


def test_aflush_awaits_the_lanes_while_the_loop_ticks(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    hold = threading.Event()
    mp_server.script(Reply(body=OK.body, hold=hold))
    mp_server.default = Reply(body=OK.body, delay=0.5)
    consumer = make_async(flush_interval=30)
    mp = Mixpanel("12345", consumer)

    async def main() -> tuple[int, Ticker]:
        ticker = Ticker()
        ticker.start()
        mp.track("u", "first")
        flushing = asyncio.create_task(consumer.aflush(timeout=30))
        await asyncio.to_thread(mp_server.wait_for, 1)  # the first batch is held
        for i in range(100):  # while a request hangs, every call still returns at once
            mp.track("u", "e", {"i": i})
            mp.people_set("u", {"i": i})
        hold.set()
        ticks_before = ticker.ticks
        await flushing  # the events lane is done; the people lane may still be sending
        pending = await consumer.aflush(timeout=30)
        assert ticker.ticks > ticks_before
        ticker.stop()
        return pending, ticker

    pending, ticker = asyncio.run(main())
    assert pending == 0
    assert Counter(m.get("event") or "profile" for m in delivered(mp_server)) == {
        "first": 1,
        "e": 100,
        "profile": 100,
    }
    assert ticker.longest < LONGEST_GAP, f"the loop stalled for {ticker.longest * 1000:.0f} ms"


def test_a_cancelled_aflush_loses_nothing_and_sends_nothing_twice(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    mp_server.default = Reply(body=OK.body, delay=0.3)
    consumer = make_async(max_size=5)
    mp = Mixpanel("12345", consumer)

    async def main() -> int:
        for i in range(20):
            mp.track("u", "e", {"i": i})
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(consumer.aflush(), 0.1)
        return await consumer.aflush(timeout=10)

    assert asyncio.run(main()) == 0
    assert sorted(m["properties"]["i"] for m in delivered(mp_server)) == list(range(20))


def test_hooks_scrub_every_endpoint_without_touching_the_callers_dicts(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    consumer = make_async()
    mp = Mixpanel("12345", consumer, before_send=scrub_email)
    properties = {"email": "ada@example.com", "plan": "pro", "cart": {"items": [1]}}
    before = copy.deepcopy(properties)
    mp.track("u", "Signed Up", properties)
    mp.people_set("u", properties)
    mp.import_data(None, "u", "Old", 1.0, properties, api_secret="S")
    assert consumer.flush(timeout=10) == 0
    assert properties == before
    sent = {
        m.get("event", "profile"): m.get("properties") or m["$set"] for m in delivered(mp_server)
    }
    assert set(sent) == {"Signed Up", "profile", "Old"}
    for values in sent.values():
        assert "email" not in values
        assert (values["plan"], values["cart"]) == ("pro", {"items": [1]})


def test_drops_are_counted_by_the_async_consumer_and_failures_reported(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    errors: list[tuple[BaseException, list[Any]]] = []
    consumer = make_async(on_error=lambda e, batch: errors.append((e, batch)))

    def sample(message: Message) -> Message | None:
        return None if message["event"] == "Noise" else message

    def strict(message: Message) -> Message:
        if message["event"] == "Broken":
            raise ValueError("no")
        if message["event"] == "Nameless":
            del message["event"]
        return message

    mp = Mixpanel("12345", consumer, before_send=[sample, strict])
    for event in ("Noise", "Broken", "Nameless", "Kept"):
        mp.track("u", event)
    assert consumer.flush(timeout=10) == 0
    assert [m["event"] for m in delivered(mp_server)] == ["Kept"]
    assert consumer.stats()["dropped"] == {"before_send": 1, "before_send_error": 2}
    assert [str(e) for e, _ in errors] == [
        "[Segment] before_send_error: before_send hook test_drops_are_counted_by_the_async_"
        "consumer_and_failures_reported.<locals>.strict raised ValueError: no",
        "[Segment] before_send_error: the message before_send returned is invalid: a message "
        "for events needs event",
    ]
    assert all(isinstance(e, MessageDropped) for e, _ in errors)


def test_with_another_consumer_a_failing_hook_is_logged_and_nothing_sent(
    log: Log, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(message: Message) -> Message:
        raise RuntimeError("scrubber down")

    mp = Mixpanel("12345", log, before_send=broken)
    with caplog.at_level(logging.WARNING, logger="mixpanel"):
        mp.track("u", "e", {"email": "ada@example.com"})
        mp.people_set("u", {"email": "ada@example.com"})
    assert log.calls == []
    [record] = [r for r in caplog.records if "before_send_error" in r.getMessage()]
    assert "scrubber down" in record.getMessage()


def test_coroutine_hooks_are_refused(log: Log) -> None:
    async def enrich(message: Message) -> Message:
        return message

    with pytest.raises(TypeError, match="coroutine function"):
        Mixpanel("12345", log, before_send=enrich)
