"""Bounded work per request (issue 26): no input stalls, bloats or leaks, and no client holds a
thread for ever. Each test reproduces a finding of the issue against a real collector."""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any, Callable

import pytest

from segment_clone.collector import Collector, live
from segment_clone.collector.formats import bounded_formats
from segment_clone.collector.live import Changes
from segment_clone.collector.plan import parse_plan
from segment_clone.collector.store import MAX_READERS

from ..api import call, get, post
from .plans import COMPACT, mixpanel_event

MakeCollector = Callable[..., Collector]


def test_the_email_format_refuses_a_huge_address_before_the_pattern_sees_it() -> None:
    email = bounded_formats("http://json-schema.org/draft-07/schema#")["email"]
    assert email("ada@example.com")
    assert email("a" * 64 + "@" + "b" * 200 + ".com")
    assert not email("a@" + "a" * 128 * 1024)  # quadratic for the pattern: 17.6 s of CPU


@pytest.mark.serial
def test_a_huge_email_under_a_plan_does_not_stall_other_requests(
    make_collector: MakeCollector,
) -> None:
    planned = make_collector(plan=parse_plan(COMPACT))
    record = mixpanel_event(
        "Order Completed", {"order_id": "o", "total": 1, "email": "a@" + "a" * 128 * 1024}, "e1"
    )
    answers: list[int] = []
    sender = threading.Thread(
        target=lambda: answers.append(post(planned.url, "/track", record).status)
    )
    sender.start()
    started = time.monotonic()
    assert call(planned.url, "GET", "/api/stats").status == 200
    answered_in = time.monotonic() - started
    sender.join(30)
    assert answers == [200]
    [flagged] = planned.violations()
    assert flagged["field"] == "properties.email"
    assert answered_in < 1.0  # the bound: it waited 17.2 s


def nested(depth: int, width: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {f"k{i}": value if i == 0 else f"value {i}" for i in range(width)}
    return value


def test_the_pretty_view_of_a_deeply_nested_message_stays_small(collector: Collector) -> None:
    message = {"type": "track", "userId": "u", "event": "E", "properties": nested(200, 9)}
    raw = json.dumps(message).encode()
    assert 25_000 < len(raw) < 32 * 1024
    assert post(collector.url, "/v1/track", message).status == 200
    [entry] = get(collector.url, "/api/entries")["entries"]
    opened = call(collector.url, "GET", f"/api/entry?id={entry['id']}")
    assert opened.status == 200
    assert len(opened.json()["pretty"]) < 2 * len(raw)  # it was 12.4 MB
    assert len(opened.body) < 5 * len(raw)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def connect(collector: Collector, sockets: list[socket.socket]) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", collector.port), timeout=10)
    sockets.append(sock)
    return sock


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
def test_abandoned_long_polls_end_and_release_what_they_held(
    collector: Collector, sockets: list[socket.socket]
) -> None:
    assert post(collector.url, "/v1/track", {"type": "track", "userId": "u", "event": "E"})
    assert collector.server.wait_for_connections(0, 10)
    baseline = open_fds()
    for _ in range(60):
        connect(collector, sockets).sendall(
            b"GET /api/events?wait=1000&timeout=25 HTTP/1.1\r\nHost: localhost\r\n\r\n"
        )
    for i in range(30):  # writes wake every waiter: each asks the store again
        post(collector.url, "/v1/track", {"type": "track", "userId": "u", "event": f"E{i}"})
    for sock in sockets:
        sock.close()
    assert collector.server.wait_for_connections(0, 10)  # not after the 25 s of their timeout
    assert len(collector.store._all) <= MAX_READERS + 2  # the writer and the checkpointer
    assert open_fds() <= baseline + 3 * MAX_READERS


def test_a_trickled_body_is_timed_out_with_408(
    collector: Collector, sockets: list[socket.socket]
) -> None:
    collector.server.request_deadline = 0.5
    sock = connect(collector, sockets)
    sock.sendall(
        b"POST /v1/batch HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{"
    )
    answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"Connection: close" in answer
    assert collector.server.wait_for_connections(0, 10)


def test_past_the_connection_cap_a_connection_gets_429(
    collector: Collector, sockets: list[socket.socket]
) -> None:
    collector.server.max_connections = 4
    idle = [connect(collector, sockets) for _ in range(4)]
    extra = connect(collector, sockets)
    extra.sendall(b"GET /api/stats HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert extra.recv(65536).startswith(b"HTTP/1.1 429 ")
    for sock in idle:
        sock.close()
    assert collector.server.wait_for_connections(0, 10)
    assert call(collector.url, "GET", "/api/stats").status == 200


def test_a_body_of_empty_lists_is_refused_before_it_is_parsed(collector: Collector) -> None:
    body = gzip.compress(b"[" + b"[]," * (10 * 1024 * 1024 // 3 - 10) + b"[]]", 9)
    assert len(body) < 30 * 1024
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    tracemalloc.start()
    try:
        reply = call(collector.url, "POST", "/track", body, headers)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reply.status == 413
    assert "objects and arrays" in reply.json()["error"]
    assert peak < 40 * 1024 * 1024  # parsing it took some 300 MB


def test_a_live_stream_ends_after_its_lifetime(monkeypatch: pytest.MonkeyPatch) -> None:
    """The page's EventSource then opens another; a stream no page reads is not held for ever."""
    changes = Changes()
    monkeypatch.setattr(live, "MAX_STREAM_SECONDS", 0.0)
    assert list(changes.stream()) == [b"retry: 1000\n\n"]
    monkeypatch.setattr(live, "MAX_STREAM_SECONDS", 600.0)
    stream = changes.stream()
    assert next(stream) == b"retry: 1000\n\n"
    assert next(stream).startswith(b"data: ")
    changes.close()
