"""The client in asyncio applications: real event loops, a real loopback server, real processes.

``track()`` stays a plain call in a running loop; ``aflush``, ``ajoin`` and ``ashutdown`` await
the consumer threads' progress through futures, so the loop keeps running while they wait.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Callable

import pytest

import segment_clone as analytics
from segment_clone import Client

from .processes import run_script
from .server import Reply, ScriptedServer, wait_until
from .ticker import LONGEST_GAP, Ticker

MakeClient = Callable[..., Client]


def ids(server: ScriptedServer) -> Counter[str]:
    return Counter(m["messageId"] for m in server.messages())


def stopped(client: Client) -> bool:
    """Every consumer thread was stopped. ``ajoin`` returns once each has left its loop; the
    thread itself ends a moment later, hence the join (which would time out on a live one)."""
    assert client.consumers is not None
    for consumer in client.consumers:
        consumer.join(timeout=1)
    return not any(consumer.is_alive() for consumer in client.consumers)


def track(client: Client, n: int, user: str = "u") -> list[str]:
    """Track ``n`` events; return their message ids."""
    return [client.track(user, "Clicked", {"i": i})[1]["messageId"] for i in range(n)]


def test_async_with_tracks_in_the_loop_and_shuts_down_on_exit(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    client = make_client(upload_interval=30)

    async def main() -> list[str]:
        async with client as same:
            assert same is client
            return track(client, 5)

    sent = asyncio.run(main())
    assert ids(server) == Counter(sent)  # delivered by the shutdown, not by a full batch
    assert stopped(client)
    assert client.stats()["pending"] == 0


@pytest.mark.serial
def test_the_loop_keeps_ticking_while_10k_events_flush_to_a_slow_server(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    server.default = Reply(delay=1.0)
    client = make_client(thread=4, upload_size=1000, upload_interval=30, max_queue_size=20000)

    async def main() -> tuple[int, Ticker, list[str]]:
        ticker = Ticker()
        ticker.start()
        sent: list[str] = []
        for _ in range(100):  # as handlers would: a few events, then back to the loop
            sent += track(client, 100)
            await asyncio.sleep(0)
        ticks_before = ticker.ticks
        pending = await client.aflush(timeout=60)
        assert ticker.ticks > ticks_before  # it ticked during the flush, not only around it
        ticker.stop()
        return pending, ticker, sent

    pending, ticker, sent = asyncio.run(main())
    assert pending == 0
    assert ids(server) == Counter(sent)
    assert ticker.longest < LONGEST_GAP, f"the loop stalled for {ticker.longest * 1000:.0f} ms"


def test_a_cancelled_ashutdown_leaves_a_client_that_delivers(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    server.default = Reply(delay=0.3)
    client = make_client(upload_size=10)

    async def main() -> list[str]:
        sent = track(client, 30)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.ashutdown(), 0.1)
        sent += track(client, 10)
        # not half closed: the consumers go on delivering with no flush asked for
        await asyncio.to_thread(wait_until, lambda: len(server.messages()) == 40)
        assert await client.ashutdown(timeout=10) == 0
        return sent

    sent = asyncio.run(main())
    assert ids(server) == Counter(sent)  # every message once: none lost, none sent twice
    assert stopped(client)


def test_a_cancelled_ajoin_loses_nothing(server: ScriptedServer, make_client: MakeClient) -> None:
    hold = threading.Event()
    server.script(Reply(hold=hold))
    client = make_client()

    async def main() -> list[str]:
        sent = track(client, 3)
        await asyncio.to_thread(server.wait_for, 1)  # the batch is in flight, held
        assert await client.aflush(timeout=0.05) == 3
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(client.ajoin(), 0.1)  # the consumer is stuck in a request
        hold.set()
        sent += track(client, 2)  # after join(), held until the next flush
        assert await client.ashutdown(timeout=10) == 0
        assert await client.ashutdown(timeout=10) == 0  # idempotent
        return sent

    sent = asyncio.run(main())
    assert ids(server) == Counter(sent)


def test_timeouts_against_failing_and_slow_servers_return_what_is_pending(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    server.default = Reply(503)
    client = make_client()

    async def main() -> list[str]:
        sent = track(client, 3)
        start = time.monotonic()
        assert await client.ashutdown(timeout=0.5) == 3  # a retry wait is cut short
        assert time.monotonic() - start < 5
        assert client.stats()["pending"] == 3
        server.default = Reply(delay=0.5)
        assert await client.aflush(timeout=0.05) == 3  # the batch is out, the answer slow
        assert await client.aflush(timeout=10) == 0
        return sent

    sent = asyncio.run(main())
    assert Counter(m["messageId"] for m in server.acknowledged()) == Counter(sent)


def test_retry_after_is_honoured_while_the_loop_awaits(
    server: ScriptedServer, make_client: MakeClient, waits: list[float]
) -> None:
    server.script(Reply(429, headers={"Retry-After": "7"}))
    client = make_client()

    async def main() -> list[str]:
        sent = track(client, 2)
        assert await client.aflush(timeout=10) == 0
        return sent

    sent = asyncio.run(main())
    assert waits == [7]
    assert [r.status for r in server.requests] == [429, 200]
    assert Counter(m["messageId"] for m in server.acknowledged()) == Counter(sent)


def test_track_from_a_thread_outside_the_loop_never_blocks(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    hold = threading.Event()
    server.script(Reply(hold=hold))
    client = make_client()
    results: list[bool] = []

    def outside() -> None:
        results.extend(ok for ok, _ in (client.track("thread", "E") for _ in range(100)))

    async def main() -> int:
        client.track("loop", "E")
        flushing = asyncio.create_task(client.aflush(timeout=10))
        await asyncio.to_thread(server.wait_for, 1)
        # The loop is blocked on purpose while the thread tracks: if track() needed the loop
        # (a future to resolve, a call into it), the thread would hang here.
        thread = threading.Thread(target=outside)
        thread.start()
        thread.join(10)
        assert not thread.is_alive() and results == [True] * 100
        hold.set()
        return await flushing

    assert asyncio.run(main()) == 0
    assert client.flush(timeout=10) == 0
    assert Counter(m["userId"] for m in server.messages()) == {"loop": 1, "thread": 100}


def test_one_client_serves_successive_event_loops(
    server: ScriptedServer, make_client: MakeClient
) -> None:
    client = make_client()

    async def handler(n: int) -> list[str]:
        sent = track(client, n)
        assert await client.aflush(timeout=10) == 0
        return sent

    sent = asyncio.run(handler(3)) + asyncio.run(handler(4))
    assert asyncio.run(client.ashutdown(timeout=10)) == 0
    assert ids(server) == Counter(sent)


def test_a_forked_child_uses_the_client_in_its_own_loop(server: ScriptedServer) -> None:
    result = run_script(
        """
        import asyncio, os, sys
        from segment_clone import Client
        client = Client("wk", host=sys.argv[1], upload_interval=0.05)

        async def handler(who, n):
            for i in range(n):
                client.track(who, "E", {"i": i})
            return await client.aflush(timeout=10)

        assert asyncio.run(handler("parent", 5)) == 0
        client.track("parent", "queued-at-fork")
        pid = os.fork()
        if pid == 0:
            pending = asyncio.run(handler("child", 7))
            pending += asyncio.run(client.ashutdown(timeout=10))
            os._exit(0 if pending == 0 else 3)
        assert os.waitpid(pid, 0)[1] == 0
        assert asyncio.run(handler("parent", 5)) == 0
        assert asyncio.run(client.ashutdown(timeout=10)) == 0
        """,
        server.url,
    )
    assert result.returncode == 0, result.stderr
    assert max(ids(server).values()) == 1
    assert Counter(m["userId"] for m in server.messages()) == {"parent": 11, "child": 7}


EXIT_WITHOUT_ASHUTDOWN = """
import asyncio, sys
from segment_clone import Client
client = Client(
    "wk",
    host=sys.argv[1],
    upload_interval=30,  # nothing leaves before the loop ends
    shutdown_timeout=float(sys.argv[2]),
    on_error=lambda e, batch: print("reported", len(batch), e.reason, flush=True),
)

async def main():
    for i in range(10):
        client.track("u", "E", {"i": i})
    asyncio.create_task(client.aflush())  # cancelled when the loop ends

asyncio.run(main())
"""


@pytest.mark.parametrize("answer", [200, 503])
def test_a_loop_that_ends_without_ashutdown_leaves_the_exit_hook_in_charge(
    server: ScriptedServer, answer: int
) -> None:
    server.default = Reply(answer)
    result = run_script(EXIT_WITHOUT_ASHUTDOWN, server.url, "0.5" if answer == 503 else "10")
    assert result.returncode == 0, result.stderr
    if answer == 200:
        assert len(server.acknowledged()) == 10 and result.stdout == ""
    else:
        assert result.stdout == "reported 10 shutdown\n"
        assert "dropped 10 message(s): shutdown" in result.stderr


@pytest.mark.usefixtures("module_client")
def test_module_level_aflush_and_ashutdown(server: ScriptedServer) -> None:
    async def main() -> tuple[int, int]:
        analytics.track("u", "First")
        flushed = await analytics.aflush(timeout=10)
        analytics.track("u", "Second")
        return flushed, await analytics.ashutdown(timeout=10)

    assert asyncio.run(main()) == (0, 0)
    assert [m["event"] for m in server.messages()] == ["First", "Second"]
    assert analytics.default_client is not None and stopped(analytics.default_client)
