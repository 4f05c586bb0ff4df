"""Issue 25's findings, each pinned by a test: the engine's edges under racing threads, exit and
fork. The interleavings that matter are forced where a seam allows it; the rest run under a
1 µs switch interval in tests/test_stress.py."""

from __future__ import annotations

import atexit
import gc
import threading
import weakref
from collections import deque

from segment_clone import Client, lifecycle
from segment_clone.consumer import Consumer
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


def test_threads_racing_the_first_calls_after_a_hookless_fork(server: ScriptedServer) -> None:
    """libc fork() skips Python's fork hooks (uWSGI without its flag). In the child, threads
    race to the PID check: each must see the child's queue, not the parent's copy, whose
    consumer does not exist there (the issue lost 73 of 504 this way)."""
    result = run_script(
        """
import ctypes, os, sys, threading
from segment_clone import Client
client = Client("wk", host=sys.argv[1], upload_interval=0.01)
client.track("parent", "before")
assert client.shutdown(timeout=10) == 0  # no thread left: libc fork is then sound
client.track("parent", "queued-at-fork")
fork = ctypes.PyDLL(None).fork
for n in range(4):
    pid = fork()
    if pid == 0:
        sys.setswitchinterval(1e-6)
        start = threading.Barrier(6)
        accepted = []
        def work():
            start.wait()
            for i in range(20):
                if client.track(f"child-{n}", "in-child")[0]:
                    accepted.append(1)
        threads = [threading.Thread(target=work) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        os._exit(0 if client.flush(timeout=10) == 0 and len(accepted) == 120 else 3)
    assert os.waitpid(pid, 0)[1] == 0
assert client.flush(timeout=10) == 0
""",
        server.url,
    )
    assert result.returncode == 0, result.stderr
    per_user: dict[str, int] = {}
    for m in server.messages():
        per_user[m["userId"]] = per_user.get(m["userId"], 0) + 1
    assert per_user == {"parent": 2, **{f"child-{n}": 120 for n in range(4)}}


def test_a_fork_while_another_thread_holds_the_connection_pool_lock(
    server: ScriptedServer,
) -> None:
    """The child's fork hooks replace the pools; closing them would wait forever for a lock
    that a thread of the parent held at the fork (2 of 1,389 forks hung in the issue)."""
    result = run_script(
        """
import os, sys, threading, time
from segment_clone import Client, request
client = Client("wk", host=sys.argv[1], upload_interval=0.01)
client.track("parent", "before")
assert client.flush(timeout=10) == 0
(pool,) = request._session._pools.values()
held, release = threading.Event(), threading.Event()
def hold_the_pool():
    with pool._lock:  # as a consumer does for a moment on every request
        held.set()
        release.wait(30)
threading.Thread(target=hold_the_pool).start()
held.wait(10)
pid = os.fork()
if pid == 0:
    client.track("child", "in-child")
    os._exit(0 if client.flush(timeout=10) == 0 else 3)
release.set()
for _ in range(300):  # bounded: 30 s
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    time.sleep(0.1)
else:
    os.kill(pid, 9)
    sys.exit("the child hung in its fork hook")
assert status == 0, status
""",
        server.url,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(m["event"] for m in server.messages()) == ["before", "in-child"]


def test_flush_waits_only_for_messages_accepted_before_it(
    server: ScriptedServer,
) -> None:
    first, second = threading.Event(), threading.Event()
    server.script(Reply(hold=first), Reply(hold=second))
    client = Client("wk", host=server.url, upload_size=1, upload_interval=0.01)
    try:
        client.track("u", "before")
        server.wait_for(1)  # held at the server
        results: list[int] = []
        flusher = threading.Thread(target=lambda: results.append(client.flush()))
        flusher.start()
        wait_until(lambda: client.queue._flushing > 0)  # the flush has taken its mark
        client.track("u", "during")
        first.set()
        server.wait_for(2)  # "during" is now held at the server
        flusher.join(5)
        assert results == [0], "flush() waited for a message tracked after it was called"
    finally:
        first.set()
        second.set()
    assert client.shutdown(timeout=10) == 0


def test_exit_delivers_from_the_exiting_thread_when_no_thread_can_start(
    server: ScriptedServer,
) -> None:
    """Python 3.12 and later refuse new threads in exit hooks; messages tracked after join()
    must still be delivered at exit, not reported. Here an earlier exit handler makes thread
    starts fail the way 3.12 does, on any Python."""
    result = run_script(
        """
import atexit, sys, threading
import segment_clone
client = segment_clone.Client(
    "wk", host=sys.argv[1], upload_interval=30,
    on_error=lambda e, batch: print("reported", len(batch)),
)
client.track("u", "before-join")
client.join()
client.track("u", "after-join")  # held until exit

def no_new_threads(*args, **kwargs):
    raise RuntimeError("can't create new thread at interpreter shutdown")

atexit.register(setattr, threading, "_start_new_thread", no_new_threads)  # runs first
""",
        server.url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert sorted(m["event"] for m in server.acknowledged()) == ["after-join", "before-join"]


class _ReadDuringTake(deque[bytes]):
    """A consumer's take lets another thread read the count of unfinished messages while
    the item is off the deque and not yet counted as held."""

    def __init__(self, items: list[bytes], reader: threading.Thread) -> None:
        super().__init__(items)
        self.reader = reader

    def popleft(self) -> bytes:
        item = super().popleft()
        if self.reader.ident is None:
            self.reader.start()
            self.reader.join(0.2)  # blocks on the queue's lock, unless the read takes none
        return item


def test_a_count_read_during_a_take_still_sees_the_message() -> None:
    """flush() returns 0 when it reads no unfinished message: a read without the lock, between
    a consumer's popleft and its count, made flush() return before the batch was delivered."""
    q = MessageQueue(10)
    seen: list[int] = []
    q._items = _ReadDuringTake(
        [b"m"], threading.Thread(target=lambda: seen.append(q.unfinished_tasks))
    )
    assert q.get_batch(1, 1 << 20, 0, threading.Event()) == [b"m"]
    q._items.reader.join(10)
    assert seen == [1]


def test_serving_a_rate_limit_episode_another_thread_ended_is_a_no_op() -> None:
    """sync_mode shares one uploader: a thread may find the episode gone by the time it
    serves it (an AssertionError escaped track() that way)."""
    sender = Consumer(None, "wk")
    sender.set_rate_limit_state(1)
    sender.clear_rate_limit_state()  # as another caller's success does
    sender._serve_rate_limit()
    assert sender.rate_limited_until is None
