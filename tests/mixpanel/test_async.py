"""AsyncBufferedConsumer against a loopback server: lanes per (endpoint, auth), batching,
the shared retry policy, on_error, stats, flush/shutdown, exit-time flush, and no blocking."""

from __future__ import annotations

import base64
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Callable

import pytest

from segment_clone.errors import APIError, MessageDropped
from segment_clone.mixpanel import (
    AsyncBufferedConsumer,
    Mixpanel,
    MixpanelAPIError,
    MixpanelException,
    ServiceAccountCredentials,
)
from segment_clone.mixpanel.async_consumer import LANE_BATCH

from ..server import Reply, ScriptedServer
from .conftest import OK, Errors, data, delivered, endpoint

MakeAsync = Callable[..., AsyncBufferedConsumer]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_every_endpoint_is_delivered_as_json(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    consumer = make_async()
    mp = Mixpanel("12345", consumer)
    mp.track("ID", "e", {"a": 1})
    mp.people_set("ID", {"b": 2})
    mp.group_set("company", "acme", {"c": 3})
    mp.import_data(None, "ID", "old", 1.0, api_secret="S")
    assert consumer.flush(timeout=10) == 0
    by_path = {endpoint(r): r for r in mp_server.requests}
    assert sorted(by_path) == ["/engage", "/groups", "/import", "/track"]
    for rec in mp_server.requests:
        assert rec.header("content-type") == "application/json"
        gzipped = endpoint(rec) == "/import"
        assert rec.header("content-encoding") == ("gzip" if gzipped else None)
        assert rec.path.partition("?")[2] == ("strict=1" if gzipped else "verbose=1&ip=0")
    assert data(by_path["/track"])[0]["properties"]["a"] == 1
    assert data(by_path["/engage"])[0]["$set"] == {"b": 2}
    assert data(by_path["/groups"])[0]["$group_id"] == "acme"
    assert by_path["/import"].header("authorization") == basic("S", "")
    assert by_path["/track"].header("authorization") is None
    assert consumer.stats() == {
        "enqueued": 4, "delivered": 4, "retried": 0, "dropped": {}, "pending": 0,
    }  # fmt: skip


def test_auth_never_mixes_within_a_batch(mp_server: ScriptedServer, make_async: MakeAsync) -> None:
    consumer = make_async(flush_interval=30)
    for i in range(6):
        consumer.send("imports", f'{{"n":{i}}}', ("K", "S1") if i % 2 else (None, "S2"))
    consumer.send("imports", '{"n":6}', ("K", "S1"))
    consumer.flush(timeout=10)
    seen = {}
    for rec in mp_server.requests:
        seen[rec.header("authorization")] = sorted(m["n"] for m in data(rec))
    assert seen == {basic("S1", ""): [1, 3, 5, 6], basic("S2", ""): [0, 2, 4]}


def test_service_account_for_imports_only(mp_server: ScriptedServer, make_async: MakeAsync) -> None:
    consumer = make_async(credentials=ServiceAccountCredentials("u", "s", "42"))
    consumer.send("imports", "{}", ("K", "S"))
    consumer.send("events", "{}")
    consumer.flush(timeout=10)
    by_path = {endpoint(r): r for r in mp_server.requests}
    assert by_path["/import"].path == "/import?strict=1&project_id=42"
    assert by_path["/import"].header("authorization") == basic("u", "s")
    assert by_path["/track"].header("authorization") is None


@pytest.mark.parametrize(("max_size", "per_request"), [(None, LANE_BATCH), (20, 20), (500, 50)])
def test_batch_sizes_per_endpoint(
    mp_server: ScriptedServer, make_async: MakeAsync, max_size: int | None, per_request: int
) -> None:
    """By default a ``/track`` request carries up to ``LANE_BATCH``; a ``max_size`` given keeps
    upstream's meaning, capped at 50."""
    consumer = make_async(max_size=max_size, flush_interval=30)
    for i in range(LANE_BATCH + 120):
        consumer.send("events", f'{{"n":{i}}}')
    for i in range(2500):
        consumer.send("imports", f'{{"n":{i}}}')
    consumer.flush(timeout=20)
    sizes: dict[str, list[int]] = {"/track": [], "/import": []}
    for rec in mp_server.requests:
        sizes[endpoint(rec)].append(len(data(rec)))
    full, rest = divmod(LANE_BATCH + 120, per_request)
    assert sizes == {"/track": [per_request] * full + [rest] * bool(rest), "/import": [2000, 500]}
    assert [m["n"] for m in delivered(mp_server) if len(m) == 1][:3] == [0, 1, 2]


def test_max_sizes_are_validated() -> None:
    with pytest.raises(ValueError, match="max_size"):
        AsyncBufferedConsumer(0)
    with pytest.raises(ValueError, match="import_max_size"):
        AsyncBufferedConsumer(import_max_size=-1)
    with pytest.raises(ValueError, match="max_queue_size"):
        AsyncBufferedConsumer(max_queue_size=0)
    assert AsyncBufferedConsumer(500, import_max_size=9000)._max_size == 50
    assert AsyncBufferedConsumer()._max_size == LANE_BATCH


def test_unknown_endpoint_raises_at_once(make_async: MakeAsync) -> None:
    with pytest.raises(MixpanelException, match='No such endpoint "bogus"'):
        make_async().send("bogus", "{}")


def test_5xx_is_retried_with_backoff(
    mp_server: ScriptedServer, make_async: MakeAsync, waits: list[float]
) -> None:
    mp_server.script(Reply(500, "oops"), Reply(503, {"status": 0, "error": "busy"}))
    consumer = make_async()
    consumer.send("events", '{"n":1}')
    assert consumer.flush(timeout=10) == 0
    assert [data(r) for r in mp_server.requests] == [[{"n": 1}]] * 3
    assert len(waits) == 2 and waits[0] == 0
    stats = consumer.stats()
    assert (stats["delivered"], stats["retried"], stats["dropped"]) == (1, 2, {})


def test_429_retry_after_is_honoured(
    mp_server: ScriptedServer, make_async: MakeAsync, waits: list[float]
) -> None:
    mp_server.script(Reply(429, "slow down", {"Retry-After": "7"}))
    consumer = make_async()
    consumer.send("events", "{}")
    assert consumer.flush(timeout=10) == 0
    assert waits == [7]
    assert len(mp_server.requests) == 2


def test_status_0_is_rejected_without_retry(
    mp_server: ScriptedServer, make_async: MakeAsync, waits: list[float]
) -> None:
    mp_server.script(Reply(200, {"status": 0, "error": "bad data"}))
    errors = Errors()
    consumer = make_async(on_error=errors)
    consumer.send("people", '{"$distinct_id":"x"}')
    assert consumer.flush(timeout=10) == 0
    assert len(mp_server.requests) == 1 and waits == []
    ((exc, messages),) = errors.calls
    assert isinstance(exc, MixpanelAPIError)
    assert isinstance(exc, APIError) and isinstance(exc, MixpanelException)
    assert (exc.status, exc.endpoint, exc.message) == (200, "people", "Mixpanel error: bad data")
    assert messages == [{"$distinct_id": "x"}]
    assert consumer.stats()["dropped"] == {"rejected": 1}


def test_retries_exhausted_are_reported(
    mp_server: ScriptedServer, make_async: MakeAsync, waits: list[float]
) -> None:
    mp_server.default = Reply(502, "bad gateway")
    errors = Errors()
    consumer = make_async(on_error=errors, retry_limit=2)
    consumer.send("events", "{}")
    assert consumer.flush(timeout=10) == 0
    assert len(mp_server.requests) == 3
    assert isinstance(errors.calls[0][0], MixpanelAPIError)
    assert errors.calls[0][0].status == 502  # type: ignore[attr-defined]
    assert consumer.stats()["dropped"] == {"retries_exhausted": 1}


def test_malformed_message_is_reported_as_text(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    mp_server.script(Reply(400, {"status": 0, "error": "invalid json"}))
    errors = Errors()
    consumer = make_async(on_error=errors)
    consumer.send("events", "{broken JSON")
    assert consumer.flush(timeout=10) == 0
    assert errors.calls[0][1] == ["{broken JSON"]
    assert mp_server.requests[0].body == b"[{broken JSON]"


def test_track_returns_while_the_server_holds_the_request(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    release = threading.Event()
    mp_server.script(Reply(body=OK.body, hold=release))
    consumer = make_async(flush_interval=0.01)
    mp = Mixpanel("12345", consumer)
    mp.track("ID", "first")
    mp_server.wait_for(1)  # the first batch is now stuck at the server
    for i in range(200):
        mp.track("ID", "more", {"i": i})
    mp.people_set("ID", {"a": 1})
    assert not release.is_set() and len(mp_server.requests) <= 2  # returned while held
    assert consumer.flush(timeout=0.1) > 0  # flush(timeout) gives up instead of hanging
    release.set()
    assert consumer.flush(timeout=10) == 0
    assert len(delivered(mp_server)) == 202


def test_full_queue_drops_and_reports(mp_server: ScriptedServer, make_async: MakeAsync) -> None:
    release = threading.Event()
    mp_server.script(Reply(body=OK.body, hold=release))
    errors = Errors()
    consumer = make_async(max_queue_size=1, flush_interval=0.01, on_error=errors)
    consumer.send("events", '{"n":1}')
    mp_server.wait_for(1)
    consumer.send("events", '{"n":2}')
    consumer.send("events", '{"n":3}')
    release.set()
    assert consumer.flush(timeout=10) == 0
    assert [m["n"] for m in delivered(mp_server)] == [1, 2]
    ((exc, messages),) = errors.calls
    assert isinstance(exc, MessageDropped) and exc.reason == "queue_full"
    assert messages == [{"n": 3}]
    assert consumer.stats()["dropped"] == {"queue_full": 1}


def test_shutdown_stops_threads_and_flush_restarts_them(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    consumer = make_async()
    consumer.send("events", '{"n":1}')
    assert consumer.shutdown(timeout=10) == 0
    lanes = list(consumer._lanes.values())
    assert lanes and not any(lane.consumer.is_alive() for lane in lanes)
    consumer.send("events", '{"n":2}')
    assert consumer.flush(timeout=10) == 0
    assert [m["n"] for m in delivered(mp_server)] == [1, 2]


def test_alias_opt_in_goes_through_the_async_consumer(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    consumer = make_async()
    Mixpanel("12345", consumer, alias_uses_consumer=True).alias("A", "O")
    consumer.flush(timeout=10)
    assert endpoint(mp_server.requests[0]) == "/track"
    assert data(mp_server.requests[0])[0]["event"] == "$create_alias"


def test_10000_events_from_4_threads_none_lost(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    consumer = make_async()
    mp = Mixpanel("12345", consumer)

    def produce(worker: int) -> None:
        for i in range(2500):
            mp.track(f"user-{worker}", "tick", {"i": i})

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert consumer.flush(timeout=60) == 0
    messages = delivered(mp_server)
    assert len({m["properties"]["$insert_id"] for m in messages}) == 10000
    assert len(messages) == 10000
    assert all(len(data(r)) <= LANE_BATCH for r in mp_server.requests)
    stats = consumer.stats()
    assert (stats["enqueued"], stats["delivered"], stats["dropped"]) == (10000, 10000, {})


EXIT_SCRIPT = """
import sys
from segment_clone.mixpanel import AsyncBufferedConsumer, Mixpanel

consumer = AsyncBufferedConsumer(api_host=sys.argv[1], flush_interval=60)
mp = Mixpanel("12345", consumer)
for i in range(3):
    mp.track("ID", "at exit", {"i": i})
"""


def test_pending_events_are_flushed_at_exit(mp_server: ScriptedServer) -> None:
    script = textwrap.dedent(EXIT_SCRIPT)
    subprocess.run([sys.executable, "-c", script, mp_server.url], check=True, timeout=60)
    assert sorted(m["properties"]["i"] for m in delivered(mp_server)) == [0, 1, 2]


def test_exit_flush_is_bounded_and_reports_leftovers(mp_server: ScriptedServer) -> None:
    release = threading.Event()
    mp_server.default = Reply(body=OK.body, hold=release)
    script = textwrap.dedent(EXIT_SCRIPT).replace(
        "flush_interval=60)",
        "flush_interval=60, shutdown_timeout=0.2, request_timeout=30,"
        " on_error=lambda e, m: print('dropped', e.reason, len(m)))",
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, mp_server.url],
            check=True, timeout=60, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        release.set()
    assert "dropped shutdown 3" in done.stdout


FORK_SCRIPT = """
import os, sys
from segment_clone.mixpanel import AsyncBufferedConsumer, Mixpanel

consumer = AsyncBufferedConsumer(api_host=sys.argv[1], flush_interval=60)
mp = Mixpanel("12345", consumer)
mp.track("parent", "before fork")
pid = os.fork()
if pid == 0:
    mp.track("child", "in child")
    code = consumer.flush(timeout=30)
    os._exit(code)
_, status = os.waitpid(pid, 0)
mp.track("parent", "after fork")
sys.exit(os.waitstatus_to_exitcode(status) or consumer.flush(timeout=30))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_gets_its_own_lanes(mp_server: ScriptedServer) -> None:
    script = textwrap.dedent(FORK_SCRIPT)
    subprocess.run([sys.executable, "-c", script, mp_server.url], check=True, timeout=60)
    events = sorted((m["properties"]["distinct_id"], m["event"]) for m in delivered(mp_server))
    assert events == [("child", "in child"), ("parent", "after fork"), ("parent", "before fork")]


MP_CHILD_SCRIPT = """
import multiprocessing, sys
from segment_clone.mixpanel import AsyncBufferedConsumer, Mixpanel

def work(url):
    mp = Mixpanel("12345", AsyncBufferedConsumer(api_host=url, flush_interval=60))
    for i in range(3):
        mp.track("child", "in a multiprocessing child", {"i": i})

if __name__ == "__main__":
    child = multiprocessing.get_context(sys.argv[2]).Process(target=work, args=(sys.argv[1],))
    child.start()
    child.join()
    sys.exit(child.exitcode)
"""


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing_child_flushes_at_exit(
    mp_server: ScriptedServer, method: str, tmp_path: Path
) -> None:
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method")
    script = tmp_path / "child.py"  # a file, so that spawn can import ``work``
    script.write_text(textwrap.dedent(MP_CHILD_SCRIPT))
    subprocess.run([sys.executable, str(script), mp_server.url, method], check=True, timeout=60)
    assert sorted(m["properties"]["i"] for m in delivered(mp_server)) == [0, 1, 2]
