"""Consumers against a real loopback server: batching, retries, errors and on_error."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

import pytest
import requests

from segment_clone import Client
from segment_clone.errors import APIError, MessageDropped

from .server import Reply, ScriptedServer

MakeClient = Callable[..., Client]


class Errors:
    """An on_error callback that records (exception, batch) pairs."""

    def __init__(self) -> None:
        self.calls: list[tuple[BaseException, list[dict[str, Any]]]] = []
        self.event = threading.Event()

    def __call__(self, exc: BaseException, batch: list[dict[str, Any]]) -> None:
        self.calls.append((exc, batch))
        self.event.set()


def test_track_is_delivered(server: ScriptedServer, make_client: MakeClient) -> None:
    client = make_client()
    ok, msg = client.track("u", "Signed Up", {"plan": "pro"})
    assert ok
    assert client.flush(timeout=10) == 0
    (received,) = server.messages()
    assert received == msg
    stats = client.stats()
    assert (stats["enqueued"], stats["delivered"], stats["pending"]) == (1, 1, 0)


def test_every_message_type_is_delivered(server: ScriptedServer, make_client: MakeClient) -> None:
    client = make_client()
    client.identify("u", {"a": 1})
    client.track("u", "e")
    client.page("u", "c", "n")
    client.screen("u", "c", "n")
    client.group("u", "g")
    client.alias("p", "u")
    client.flush(timeout=10)
    assert [m["type"] for m in server.messages()] == [
        "identify", "track", "page", "screen", "group", "alias",
    ]  # fmt: skip


def test_batches_by_upload_size(server: ScriptedServer, make_client: MakeClient) -> None:
    client = make_client(upload_size=3, upload_interval=30)
    for i in range(7):
        client.track("u", f"e{i}")
    client.flush(timeout=10)
    sizes = [len(r.json()["batch"]) for r in server.requests]
    assert sizes == [3, 3, 1]
    assert [m["event"] for m in server.messages()] == [f"e{i}" for i in range(7)]


def test_batches_stay_under_the_byte_limit(server: ScriptedServer, make_client: MakeClient) -> None:
    client = make_client(upload_interval=30)
    for i in range(40):
        client.track("u", "big", {"i": i, "blob": "x" * 30000})
    client.flush(timeout=30)
    assert len(server.messages()) == 40
    assert len(server.requests) >= 3
    for req in server.requests:
        assert len(req.body) < 500_000


def test_partial_batch_waits_for_upload_interval(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    client = make_client(upload_interval=0.3)
    client.track("u", "e")
    tracked = time.monotonic()
    client.track("u", "f")
    (req,) = server.wait_for(1)
    # both messages went in one batch, sent only once the interval had passed
    assert [m["event"] for m in req.json()["batch"]] == ["e", "f"]
    assert req.at - tracked >= 0.25
    assert client.flush(timeout=5) == 0


def test_gzip(server: ScriptedServer, make_client: MakeClient) -> None:
    client = make_client(gzip=True)
    client.track("u", "e", {"k": "v" * 100})
    client.flush(timeout=10)
    (req,) = server.requests
    assert req.header("Content-Encoding") == "gzip"
    assert req.json()["batch"][0]["properties"] == {"k": "v" * 100}


def test_retry_sequence(
    server: ScriptedServer, make_client: MakeClient, waits: list[float]
) -> None:
    errors = Errors()
    client = make_client(on_error=errors)
    server.script(Reply(500), Reply(503))
    client.track("u", "e")
    assert client.flush(timeout=10) == 0
    reqs = server.requests
    assert [r.header("X-Retry-Count") for r in reqs] == [None, "1", "2"]
    assert reqs[0].json()["batch"] == reqs[2].json()["batch"]
    assert errors.calls == []
    assert len(waits) == 2 and waits[0] == 0 and 0.5 <= waits[1] <= 0.55
    assert client.stats()["retried"] == 2
    assert client.stats()["delivered"] == 1


def test_retries_exhausted(
    server: ScriptedServer, make_client: MakeClient, waits: list[float]
) -> None:
    errors = Errors()
    client = make_client(on_error=errors, max_retries=2)
    server.default = Reply(500, {"code": "boom", "message": "down"})
    _, msg = client.track("u", "e")
    assert client.flush(timeout=10) == 0
    assert len(server.requests) == 3
    ((exc, batch),) = errors.calls
    assert isinstance(exc, APIError) and exc.status == 500
    assert batch == [msg]
    assert client.stats()["dropped"] == {"retries_exhausted": 1}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422, 501, 505])
def test_non_retryable_status(
    server: ScriptedServer, make_client: MakeClient, waits: list[float], status: int
) -> None:
    errors = Errors()
    client = make_client(on_error=errors)
    server.script(Reply(status, {"code": "nope", "message": "refused"}))
    client.track("u", "e")
    client.flush(timeout=10)
    assert len(server.requests) == 1
    ((exc, _),) = errors.calls
    assert isinstance(exc, APIError) and exc.status == status
    assert client.stats()["dropped"] == {"rejected": 1}


@pytest.mark.parametrize("status", [408, 410, 429, 460, 500, 502, 503, 504])
def test_retryable_status(
    server: ScriptedServer, make_client: MakeClient, waits: list[float], status: int
) -> None:
    errors = Errors()
    client = make_client(on_error=errors)
    server.script(Reply(status))
    client.track("u", "e")
    client.flush(timeout=10)
    assert len(server.requests) == 2
    assert errors.calls == []


def test_retry_after_is_honoured_without_spending_the_budget(
    server: ScriptedServer, make_client: MakeClient, waits: list[float]
) -> None:
    client = make_client(max_retries=0)
    server.script(
        Reply(429, headers={"Retry-After": "7"}),
        Reply(503, headers={"Retry-After": "3"}),
    )
    client.track("u", "e")
    assert client.flush(timeout=10) == 0
    assert waits == [7, 3]
    assert [r.header("X-Retry-Count") for r in server.requests] == [None, "1", "2"]
    assert client.stats()["delivered"] == 1


def test_rate_limit_budget(
    server: ScriptedServer, make_client: MakeClient, waits: list[float]
) -> None:
    errors = Errors()
    client = make_client(on_error=errors, max_rate_limit_duration=10)
    server.default = Reply(429, headers={"Retry-After": "6"})
    client.track("u", "e")
    client.flush(timeout=10)
    # the first wait fits in the budget; the second would end past it, so the batch is dropped
    assert waits == [6]
    assert len(server.requests) == 2
    assert client.stats()["dropped"] == {"rate_limit_exceeded": 1}
    assert isinstance(errors.calls[0][0], APIError)


def test_zero_backoff_budget_means_one_attempt(
    server: ScriptedServer, make_client: MakeClient, waits: list[float]
) -> None:
    client = make_client(max_total_backoff_duration=0)
    server.default = Reply(500)
    client.track("u", "e")
    client.flush(timeout=10)
    assert len(server.requests) == 1
    assert client.stats()["dropped"] == {"retries_exhausted": 1}


def test_connection_reset_is_retried(
    server: ScriptedServer, make_client: MakeClient, waits: list[float]
) -> None:
    client = make_client()
    server.script(Reply(reset=True), Reply(reset=True))
    client.track("u", "e")
    assert client.flush(timeout=10) == 0
    assert len(server.messages()) == 3  # two bodies recorded before the resets, one acknowledged
    assert client.stats()["delivered"] == 1


def test_unreachable_server_reports_connection_error(waits: list[float]) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    errors = Errors()
    client = Client("wk", host=f"http://127.0.0.1:{port}", on_error=errors, max_retries=1)
    client.track("u", "e")
    assert client.flush(timeout=10) == 0
    ((exc, _),) = errors.calls
    assert isinstance(exc, requests.ConnectionError)
    client.join(5)


def test_on_error_raising_does_not_kill_the_consumer(
    server: ScriptedServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def bad_handler(exc: BaseException, batch: list[dict[str, Any]]) -> None:
        calls.append(batch)
        raise RuntimeError("handler bug")

    client = make_client(on_error=bad_handler)
    server.script(Reply(400))
    client.track("u", "first")
    client.flush(timeout=10)
    client.track("u", "second")
    assert client.flush(timeout=10) == 0
    assert len(calls) == 1
    assert [m["event"] for m in server.messages()] == ["first", "second"]
    assert client.consumers is not None and all(c.is_alive() for c in client.consumers)
    assert "on_error callback raised" in caplog.text


def test_three_consumers(server: ScriptedServer, make_client: MakeClient) -> None:
    client = make_client(thread=3, upload_size=10)
    for i in range(300):
        client.track("u", "e", {"i": i})
    assert client.flush(timeout=30) == 0
    assert client.consumers is not None and len(client.consumers) == 3
    assert all(c.is_alive() for c in client.consumers)
    assert sorted(m["properties"]["i"] for m in server.messages()) == list(range(300))
    client.join(timeout=10)
    assert not any(c.is_alive() for c in client.consumers)


def test_queue_full(
    server: ScriptedServer, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    errors = Errors()
    client = make_client(max_queue_size=1, on_error=errors)
    client.join()  # no consumer drains the queue
    with caplog.at_level(logging.WARNING, logger="segment"):
        assert client.track("u", "one")[0] is True
        ok, msg = client.track("u", "two")
        client.track("u", "three")
    assert ok is False and msg["event"] == "two"
    assert [r.getMessage().count("queue is full") for r in caplog.records] == [1]  # no flood
    assert [type(e) for e, _ in errors.calls] == [MessageDropped, MessageDropped]
    assert errors.calls[0][1][0]["event"] == "two"
    stats = client.stats()
    assert stats["dropped"] == {"queue_full": 2}
    assert (stats["enqueued"], stats["pending"]) == (1, 1)
    assert client.flush(timeout=10) == 0  # flush restarts the stopped consumer
    assert [m["event"] for m in server.messages()] == ["one"]


def test_timeout_and_proxies_reach_the_consumer(server: ScriptedServer, waits: list[float]) -> None:
    errors = Errors()
    client = Client(
        "wk",
        host="http://api.segment.invalid",
        proxies={"http": server.url},
        timeout=0.2,
        max_retries=0,
        on_error=errors,
        upload_interval=0.05,
    )
    server.script(Reply(delay=1.0))
    client.track("u", "e")
    client.flush(timeout=10)
    assert server.requests[0].path == "http://api.segment.invalid/v1/batch"
    ((exc, _),) = errors.calls
    assert isinstance(exc, requests.exceptions.ReadTimeout)
    client.join(5)
