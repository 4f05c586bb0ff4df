"""flush / join / shutdown never hang, sync_mode, and what happens at interpreter exit."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pytest

from segment_clone import Client
from segment_clone.errors import APIError

from .processes import run_script
from .server import Reply, ScriptedServer

MakeClient = Callable[..., Client]


def test_flush_with_timeout_returns_pending_against_a_failing_server(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    server.default = Reply(500)
    client = make_client()
    client.track("u", "e")
    client.track("u", "f")
    start = time.monotonic()
    assert client.flush(timeout=0.3) == 2
    assert time.monotonic() - start < 5
    # join cuts the backoff wait short; the batch goes back to the queue, still pending
    assert client.join(timeout=5) == 2
    assert client.consumers is not None and not any(c.is_alive() for c in client.consumers)
    assert client.stats()["pending"] == 2
    server.default = Reply(200)
    assert client.flush(timeout=10) == 0
    assert [m["event"] for m in server.messages()[-2:]] == ["e", "f"]  # order kept


def test_join_returns_while_a_request_is_stuck(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    hold = threading.Event()
    server.script(Reply(hold=hold))
    client = make_client()
    client.track("u", "e")
    server.wait_for(1)
    start = time.monotonic()
    assert client.join(timeout=0.2) == 1
    assert time.monotonic() - start < 5
    hold.set()
    assert client.flush(timeout=10) == 0


def test_shutdown_delivers_and_stops(server: ScriptedServer, make_client: MakeClient) -> None:
    client = make_client(upload_interval=30)
    for i in range(5):
        client.track("u", "e", {"i": i})
    assert client.shutdown(timeout=10) == 0
    assert len(server.messages()) == 5
    assert client.consumers is not None and not any(c.is_alive() for c in client.consumers)


def test_flush_after_a_consumer_died(server: ScriptedServer, make_client: MakeClient) -> None:
    client = make_client()
    client.track("u", "first")
    client.flush(timeout=10)
    assert client.consumers is not None
    dead = client.consumers[0]
    dead.pause()  # as if the thread had ended unexpectedly
    dead.join(5)
    client.track("u", "second")
    assert client.flush(timeout=10) == 0
    assert [m["event"] for m in server.messages()] == ["first", "second"]
    assert client.consumers[0] is not dead


def test_sync_mode_sends_before_returning(server: ScriptedServer, waits: list[float]) -> None:
    client = Client("wk", host=server.url, sync_mode=True)
    assert client.consumers is None
    ok, msg = client.track("u", "e")
    assert ok
    assert server.messages() == [msg]
    assert client.flush() == 0 and client.join() == 0 and client.shutdown() == 0


def test_sync_mode_retries_and_reports(server: ScriptedServer, waits: list[float]) -> None:
    errors: list[tuple[BaseException, list[dict[str, Any]]]] = []
    client = Client(
        "wk", host=server.url, sync_mode=True, on_error=lambda e, b: errors.append((e, b))
    )
    server.script(Reply(500), Reply(200), Reply(400))
    assert client.track("u", "retried")[0] is True
    assert len(server.requests) == 2
    ok, msg = client.track("u", "refused")
    assert ok is False
    ((exc, batch),) = errors
    assert isinstance(exc, APIError) and exc.status == 400 and batch == [msg]
    assert client.stats()["delivered"] == 1
    assert client.stats()["dropped"] == {"rejected": 1}


def test_exit_without_flush_delivers(server: ScriptedServer) -> None:
    result = run_script(
        f"""
        import segment_clone as analytics
        analytics.write_key = "wk"
        analytics.host = "{server.url}"
        analytics.upload_interval = 30
        for i in range(250):
            analytics.track("u", "exit", {{"i": i}})
        """
    )
    assert result.returncode == 0, result.stderr
    assert sorted(m["properties"]["i"] for m in server.messages()) == list(range(250))


def test_exit_with_server_down_is_bounded_and_reported(server: ScriptedServer) -> None:
    server.default = Reply(503)
    start = time.monotonic()
    result = run_script(
        f"""
        import segment_clone as analytics
        reported = []
        def on_error(exc, batch):
            reported.extend(batch)
            print("reported", len(reported), type(exc).__name__, flush=True)
        analytics.write_key = "wk"
        analytics.host = "{server.url}"
        analytics.on_error = on_error
        analytics.shutdown_timeout = 1
        for i in range(3):
            analytics.track("u", "lost")
        """
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["reported 3 MessageDropped"]  # once, not per hook
    assert "not delivered within shutdown_timeout" in result.stderr
    assert elapsed < 30


def test_block_policy_waits_for_room(server: ScriptedServer, make_client: MakeClient) -> None:
    hold = threading.Event()
    server.script(Reply(hold=hold))
    client = make_client(
        max_queue_size=1, upload_size=1, queue_full_policy="block", queue_full_timeout=30
    )
    client.track("u", "a")
    server.wait_for(1)  # "a" is in flight and held by the server
    client.track("u", "b")  # fills the queue
    results: list[tuple[bool, dict[str, Any]]] = []
    caller = threading.Thread(target=lambda: results.append(client.track("u", "c")))
    caller.start()
    caller.join(0.3)
    assert caller.is_alive(), "track() should wait for room under the block policy"
    hold.set()
    caller.join(10)
    assert results[0][0] is True
    assert client.flush(timeout=10) == 0
    assert [m["event"] for m in server.acknowledged()] == ["a", "b", "c"]
    assert client.stats()["dropped"] == {}


def test_block_policy_gives_up_after_its_timeout(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    hold = threading.Event()
    server.script(Reply(hold=hold))
    client = make_client(
        max_queue_size=1, upload_size=1, queue_full_policy="block", queue_full_timeout=0.1
    )
    client.track("u", "a")
    server.wait_for(1)
    client.track("u", "b")
    ok, msg = client.track("u", "c")
    assert ok is False and msg["event"] == "c"
    assert client.stats()["dropped"] == {"queue_full": 1}
    hold.set()
    assert client.flush(timeout=10) == 0


def test_bad_queue_full_policy() -> None:
    with pytest.raises(ValueError, match="queue_full_policy"):
        Client("wk", queue_full_policy="drop_oldest")


def test_a_client_dropped_by_the_application_still_delivers_at_exit(
    server: ScriptedServer,
) -> None:
    result = run_script(
        """
        import gc, sys
        from segment_clone import Client

        def handler():
            Client("wk", host=sys.argv[1], upload_interval=30).track("u", "orphaned")

        handler()
        gc.collect()
        """,
        server.url,
    )
    assert result.returncode == 0, result.stderr
    assert [m["event"] for m in server.acknowledged()] == ["orphaned"]
