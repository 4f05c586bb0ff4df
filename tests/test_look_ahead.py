"""A consumer with gzip takes and compresses its next batch while the current one is at the
server: batches stay in order and are delivered once, through retries and a stop."""

from __future__ import annotations

import gzip
import json
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from segment_clone import request
from segment_clone.consumer import Consumer
from segment_clone.message_queue import MessageQueue
from segment_clone.request import PreparedBatch

from .server import Reply, ScriptedServer, wait_until

MESSAGES = 250


def queued(count: int = MESSAGES) -> MessageQueue:
    queue = MessageQueue(10_000)
    for n in range(count):
        queue.put_nowait(json.dumps({"type": "track", "event": "e", "messageId": str(n)}).encode())
    return queue


def consumer_for(server: ScriptedServer, queue: MessageQueue, use_gzip: bool = True) -> Consumer:
    return Consumer(queue, "wk", host=server.url, gzip=use_gzip, upload_interval=0.01)


def ids(messages: list[Any]) -> list[int]:
    return [
        int(json.loads(m)["messageId"] if isinstance(m, bytes) else m["messageId"])
        for m in messages
    ]


def test_the_next_batch_is_taken_while_one_is_at_the_server(server: ScriptedServer) -> None:
    queue = queued()
    consumer = consumer_for(server, queue)

    assert consumer.upload()
    assert ids(consumer.in_flight) == list(range(100, 200))  # held, and owed
    assert queue.qsize() == 50
    assert queue.unfinished_tasks == 150

    assert consumer.upload()  # the batch taken ahead; the last 50 are not a full batch
    assert consumer.in_flight == []
    assert consumer.upload()
    assert ids(server.acknowledged()) == list(range(MESSAGES))
    assert queue.unfinished_tasks == 0


def test_the_body_compressed_ahead_is_the_one_sent(server: ScriptedServer) -> None:
    consumer = consumer_for(server, queued())
    consumer.upload()
    ahead = consumer._ahead
    assert isinstance(ahead, PreparedBatch)

    consumer.upload()
    first, second = server.wait_for(2)
    assert second.raw == ahead.data
    assert json.loads(gzip.decompress(ahead.data))["sentAt"] == second.json()["sentAt"]
    assert ids(first.json()["batch"]) == list(range(100))


def test_no_batch_is_taken_ahead_without_gzip(server: ScriptedServer) -> None:
    queue = queued()
    consumer = consumer_for(server, queue, use_gzip=False)
    assert consumer.upload()
    assert consumer.in_flight == []
    assert queue.qsize() == MESSAGES - 100


def test_a_retried_batch_goes_before_the_one_taken_ahead(
    server: ScriptedServer, waits: list[float]
) -> None:
    server.script(Reply(500), Reply(200))
    queue = queued()
    consumer = consumer_for(server, queue)
    while queue.unfinished_tasks:
        consumer.upload()
    statuses = [r.status for r in server.requests]
    assert statuses == [500, 200, 200, 200]
    assert ids(server.requests[0].json()["batch"]) == list(range(100))
    assert ids(server.acknowledged()) == list(range(MESSAGES))
    assert len(waits) == 1


def test_a_consumer_that_stops_puts_the_batch_taken_ahead_back_first(
    server: ScriptedServer,
) -> None:
    queue = queued()
    consumer = consumer_for(server, queue)
    consumer.upload()
    consumer.pause()
    consumer.run()  # returns at once: not running

    assert consumer.in_flight == []
    assert ids(queue.take_all()) == list(range(100, MESSAGES))
    assert ids(server.acknowledged()) == list(range(100))


def test_a_stale_body_is_encoded_again(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    messages = [json.dumps({"messageId": str(n)}).encode() for n in range(3)]
    prepared = PreparedBatch(messages, "wk", True)
    later = prepared.encoded_at + request.PREPARED_FRESH_FOR + 1
    monkeypatch.setattr(request, "time", SimpleNamespace(monotonic=lambda: later))

    request.post("wk", server.url, gzip=True, batch=prepared)
    (sent,) = server.wait_for(1)
    assert sent.raw != prepared.data
    assert ids(sent.json()["batch"]) == [0, 1, 2]


def test_a_body_prepared_for_other_settings_is_not_sent(server: ScriptedServer) -> None:
    prepared = PreparedBatch([b'{"messageId":"7"}'], "wk", True)
    request.post("other-key", server.url, gzip=True, batch=prepared)
    (sent,) = server.wait_for(1)
    assert sent.json()["writeKey"] == "other-key"


def test_a_prepared_body_is_used_while_fresh(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    prepared = PreparedBatch([b'{"messageId":"7"}'], "wk", True)
    just_in_time = prepared.encoded_at + request.PREPARED_FRESH_FOR
    monkeypatch.setattr(request, "time", SimpleNamespace(monotonic=lambda: just_in_time))
    request.post("wk", server.url, gzip=True, batch=prepared)
    (sent,) = server.wait_for(1)
    assert sent.raw == prepared.data


def test_a_rate_limited_batch_goes_back_ahead_of_the_one_taken_ahead(
    server: ScriptedServer, waits: list[float]
) -> None:
    server.script(Reply(429, headers={"Retry-After": "2"}))
    queue = queued()
    consumer = consumer_for(server, queue)

    assert not consumer.upload()  # rate-limited: both batches go back, in order
    assert consumer.in_flight == []
    assert queue.qsize() == MESSAGES
    while queue.unfinished_tasks:
        consumer.upload()
    assert ids(server.acknowledged()) == list(range(MESSAGES))
    assert waits == [2]


def test_while_the_answer_is_pending_in_flight_holds_both_batches(
    server: ScriptedServer,
) -> None:
    """What the exit hook spools or reports when the consumer is stuck on a request."""
    answer = threading.Event()
    server.script(Reply(hold=answer))
    queue = queued()
    consumer = consumer_for(server, queue)
    consumer.start()
    try:
        wait_until(lambda: len(consumer.in_flight) == 200)
        assert ids(consumer.in_flight) == list(range(200))
    finally:
        answer.set()
    assert queue.join(timeout=10)
    consumer.pause()
    consumer.join(timeout=10)
    assert ids(server.acknowledged()) == list(range(MESSAGES))
