"""Issue 25's findings, each pinned by a test: the engine's edges under racing threads, exit and
fork. The interleavings that matter are forced where a seam allows it; the rest run under a
1 µs switch interval in tests/test_stress.py."""

from __future__ import annotations

import atexit
import gc
import json
import threading
import weakref
from collections import deque

from segment_clone import Client, lifecycle
from segment_clone.message_queue import MessageQueue

from .processes import run_script
from .server import Reply, ScriptedServer, wait_until


class _PutDuringTake(deque[bytes]):
    """The take's first step on the deque lets another caller's put run to completion."""

    def __init__(self, items: list[bytes], racing_put: threading.Thread) -> None:
        super().__init__(items)
        self.racing_put = racing_put

    def _race(self) -> None:
        if self.racing_put.ident is None:
            self.racing_put.start()
            self.racing_put.join(10)

    def popleft(self) -> bytes:
        self._race()
        return super().popleft()

    def clear(self) -> None:
        self._race()
        super().clear()


def test_take_all_keeps_what_a_racing_put_appends() -> None:
    """Puts take no lock; a take that copied the deque and then cleared it wiped a put that
    landed in between (76,000 of 300,000 in the issue's stress)."""
    q = MessageQueue(10)
    q._items = _PutDuringTake([b"a", b"b"], threading.Thread(target=q.put_nowait, args=(b"c",)))
    taken = q.take_all()
    assert sorted(taken + list(q._items)) == [b"a", b"b", b"c"]
    assert q.unfinished_tasks == 3


class _RacingDeque(deque[bytes]):
    """The first append lets a second caller's whole put run before the first put goes on:
    the interleaving in which both see a length of 2 after their append."""

    def __init__(self, second_put: threading.Thread) -> None:
        super().__init__()
        self.second_put = second_put

    def append(self, item: bytes) -> None:
        super().append(item)
        if len(self) == 1:
            self.second_put.start()
            self.second_put.join(10)


def test_two_racing_first_puts_wake_a_sleeping_consumer() -> None:
    q = MessageQueue(100, batch_size=100)
    stop = threading.Event()
    got: list[list[bytes]] = []
    consumer = threading.Thread(target=lambda: got.append(q.get_batch(2, 1 << 20, 0, stop)))
    consumer.start()
    wait_until(lambda: q._sleepers == 1)  # asleep on the empty queue
    q._items = _RacingDeque(threading.Thread(target=q.put_nowait, args=(b"second",)))
    q.put_nowait(b"first")
    consumer.join(5)
    woken = not consumer.is_alive()
    stop.set()
    q.wake()
    consumer.join(5)
    assert woken, "neither put woke the consumer"
    assert got == [[b"first", b"second"]]


def test_one_exit_callback_however_many_clients(server: ScriptedServer) -> None:
    before = atexit._ncallbacks()
    clients = [Client("wk", host=server.url, upload_interval=0.05) for _ in range(200)]
    for client in clients[:3]:
        client.track("u", "e")
    assert atexit._ncallbacks() == before
    for client in clients[:3]:
        assert client.shutdown(timeout=10) == 0


def test_shutdown_leaves_the_registry_and_a_later_track_enlists_again(
    server: ScriptedServer,
) -> None:
    client = Client("wk", host=server.url, upload_interval=0.05)
    client.track("u", "first")
    assert client in lifecycle._registry.members()
    assert client.shutdown(timeout=10) == 0
    assert client not in lifecycle._registry.members()
    client.track("u", "after-shutdown")  # held, and owed at exit again
    assert client in lifecycle._registry.members()
    assert client.shutdown(timeout=10) == 0
    ref = weakref.ref(client)
    del client
    gc.collect()
    assert ref() is None  # nothing keeps a shut-down client alive


ACCOUNTING = """
import atexit, json, sys, threading

accepted, reported = [], []
stop = threading.Event()

def account():  # registered before segment_clone is imported: runs after its exit flush
    stop.set()
    for t in threads:
        t.join(10)
    print(json.dumps({"accepted": accepted, "reported": reported}))

atexit.register(account)

import segment_clone
"""


def _accounting(stdout: str) -> tuple[set[str], set[str]]:
    result = json.loads(stdout.splitlines()[-1])
    return set(result["accepted"]), set(result["reported"])


def test_exit_while_threads_track_loses_nothing(server: ScriptedServer) -> None:
    """Every message a track() accepted is delivered or reported, however the exit hook and
    the tracking threads interleave."""
    result = run_script(
        ACCOUNTING
        + """
sys.setswitchinterval(1e-6)
client = segment_clone.Client(
    "wk", host=sys.argv[1], upload_interval=0.01, shutdown_timeout=0.3,
    on_error=lambda e, batch: reported.extend(m["messageId"] for m in batch),
)

def work():
    for i in range(20_000):
        if stop.is_set():
            return
        ok, msg = client.track("u", "e", {"i": i})
        if ok:
            accepted.append(msg["messageId"])

threads = [threading.Thread(target=work, daemon=True) for _ in range(3)]
for t in threads:
    t.start()
while len(accepted) < 300:
    pass
""",
        server.url,
    )
    assert result.returncode == 0, result.stderr
    accepted, reported = _accounting(result.stdout)
    stored = {m["messageId"] for m in server.messages()}
    assert len(accepted) >= 300
    assert accepted - stored - reported == set()


def test_a_track_after_the_exit_flush_is_refused_and_reported(server: ScriptedServer) -> None:
    result = run_script(
        """
import atexit, sys
reported = []

def late():  # registered before segment_clone is imported: runs after its exit flush
    ok, _ = client.track("u", "late")
    print("late", ok, reported)

atexit.register(late)
import segment_clone
client = segment_clone.Client(
    "wk", host=sys.argv[1],
    on_error=lambda e, batch: reported.extend(f"{e.reason}:{m['event']}" for m in batch),
)
client.track("u", "before")
""",
        server.url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["late False ['shutdown:late']"]
    assert [m["event"] for m in server.acknowledged()] == ["before"]


def test_a_batch_of_a_replaced_consumer_is_settled_at_exit(server: ScriptedServer) -> None:
    """join() stops a consumer that is stuck in a request; flush() replaces it. Its batch is
    still owed: the exit hook reports it when it is not delivered in time."""
    hold = threading.Event()
    server.script(Reply(hold=hold))
    try:
        result = run_script(
            """
import sys, time
from segment_clone import Client
client = Client(
    "wk", host=sys.argv[1], upload_interval=0.01, shutdown_timeout=0.5,
    on_error=lambda e, batch: print("reported", *[m["event"] for m in batch], flush=True),
)
client.track("u", "stuck")
while client.stats()["pending"] and client.flush(timeout=0.05):
    if client.consumers[0].in_flight:
        break
client.join(0.1)              # the consumer stops, but its request is still at the server
client.track("u", "next")
assert client.flush(timeout=10) == 1   # a new consumer delivers "next"; "stuck" is owed
""",
            server.url,
        )
    finally:
        hold.set()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["reported stuck"]
    assert [m["event"] for m in server.acknowledged()] == ["next"]
