from __future__ import annotations

import queue
import threading
import time

import pytest

from segment_clone import message_queue
from segment_clone.message_queue import YIELD_EVERY, YIELD_SECONDS, MessageQueue

from .server import wait_until


def never() -> threading.Event:
    return threading.Event()


def test_bounded_and_counts_accepted() -> None:
    q = MessageQueue(2)
    q.put_nowait(b"1")
    q.put_nowait(b"2")
    with pytest.raises(queue.Full):
        q.put_nowait(b"3")
    assert q.qsize() == q.maxsize == 2 and q.accepted == 2 and q.unfinished_tasks == 2


def test_puts_yield_from_half_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """While half the queue or more is waiting and no consumer waits for items, one put in
    ``YIELD_EVERY`` sleeps, and one in a quarter of that from three quarters full, so that a
    consumer starved of the GIL gets it; a burst into the first half never sleeps."""
    slept: list[float] = []
    monkeypatch.setattr(message_queue.time, "sleep", slept.append)
    q = MessageQueue(1000)
    for _ in range(499):
        q.put_nowait(b"m")
    assert slept == []
    q.put_nowait(b"m")
    assert slept == [YIELD_SECONDS]
    while q.qsize() < 749:
        q.put_nowait(b"m")
    assert len(slept) == 3  # at 500, 600 and 700
    while not q.full():
        q.put_nowait(b"m")
    assert slept == [YIELD_SECONDS] * (3 + 1 + 250 // (YIELD_EVERY // 4))  # 750, 775 ... 1000
    q.get_batch(100, 1 << 20, 0, never())  # a consumer takes a batch: 900 left
    for _ in range(100):
        q.put_nowait(b"m")
    assert len(slept) == 14 + 4  # at 925, 950, 975 and 1000


def test_other_callers_wait_while_one_yields(monkeypatch: pytest.MonkeyPatch) -> None:
    """A caller that yields holds the others back: the GIL it gives up must reach a consumer,
    not the next caller in a tight loop."""
    yielding, resume = threading.Event(), threading.Event()

    def sleep(seconds: float) -> None:
        yielding.set()
        assert resume.wait(10)

    monkeypatch.setattr(message_queue.time, "sleep", sleep)
    q = MessageQueue(200)
    for _ in range(99):
        q.put_nowait(b"m")
    first = threading.Thread(target=q.put_nowait, args=(b"yields",))  # the 100th: sleeps
    first.start()
    assert yielding.wait(10)
    second = threading.Thread(target=q.put_nowait, args=(b"waits",))
    second.start()
    second.join(0.2)
    assert second.is_alive()  # appended, and held back until the yield ends
    resume.set()
    first.join(10)
    second.join(10)
    assert not first.is_alive() and not second.is_alive()
    assert q.qsize() == 101


def test_a_signal_handler_can_put_while_its_thread_yields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A handler runs inside the interrupted ``sleep``, on the thread that holds the yield."""
    q = MessageQueue(200)
    handled: list[bool] = []

    def sleep(seconds: float) -> None:
        if not handled:
            handled.append(True)
            q.put_nowait(b"from the handler")  # as a SIGTERM handler's track() would

    monkeypatch.setattr(message_queue.time, "sleep", sleep)
    for _ in range(99):
        q.put_nowait(b"m")
    caller = threading.Thread(target=q.put_nowait, args=(b"yields",), daemon=True)
    caller.start()
    caller.join(10)
    assert not caller.is_alive() and handled and q.qsize() == 101


def test_no_yield_while_a_consumer_waits_for_items(monkeypatch: pytest.MonkeyPatch) -> None:
    """A consumer asleep in ``get_batch`` is not behind: puts wake it instead of yielding."""
    q = MessageQueue(1000, batch_size=10_000)
    stop = threading.Event()
    got: list[list[bytes]] = []
    consumer = threading.Thread(target=lambda: got.append(q.get_batch(10_000, 1 << 30, 30, stop)))
    consumer.start()
    wait_until(lambda: q._sleepers == 1)
    slept: list[float] = []
    monkeypatch.setattr(message_queue.time, "sleep", slept.append)
    while not q.full():
        q.put_nowait(b"m")
    monkeypatch.undo()
    with q.flushing():
        consumer.join(5)
    assert slept == [] and len(got[0]) == 1000


def test_rejects_non_positive_size() -> None:
    with pytest.raises(ValueError, match="max_queue_size"):
        MessageQueue(0)


def test_batch_by_count_keeps_order() -> None:
    q = MessageQueue(100, batch_size=3)
    for i in range(7):
        q.put_nowait(str(i).encode())
    stop = never()
    assert q.get_batch(3, 10_000, 10, stop) == [b"0", b"1", b"2"]
    assert q.get_batch(3, 10_000, 10, stop) == [b"3", b"4", b"5"]


def test_batch_by_bytes() -> None:
    q = MessageQueue(100)
    for _ in range(5):
        q.put_nowait(b"x" * 40)
    batch = q.get_batch(100, 100, 0, never())
    assert len(batch) == 2
    # a single item larger than the byte cap still goes out alone
    q2 = MessageQueue(10)
    q2.put_nowait(b"y" * 500)
    assert q2.get_batch(100, 100, 0, never()) == [b"y" * 500]


def test_partial_batch_waits_for_the_interval_unless_flushing() -> None:
    q = MessageQueue(100)
    q.put_nowait(b"a")
    start = time.monotonic()
    assert q.get_batch(10, 10_000, 0.2, never()) == [b"a"]
    assert time.monotonic() - start >= 0.19
    q.put_nowait(b"b")
    with q.flushing():
        start = time.monotonic()
        assert q.get_batch(10, 10_000, 30, never()) == [b"b"]
        assert time.monotonic() - start < 5


def test_full_batch_wakes_a_waiting_consumer() -> None:
    q = MessageQueue(100, batch_size=3)
    got: list[list[bytes]] = []
    t = threading.Thread(target=lambda: got.append(q.get_batch(3, 10_000, 30, never())))
    t.start()
    for i in range(3):
        q.put_nowait(str(i).encode())
    t.join(5)
    assert got == [[b"0", b"1", b"2"]]


def test_stop_returns_empty_and_leaves_items() -> None:
    q = MessageQueue(10)
    stop = threading.Event()
    result: list[list[bytes]] = []
    t = threading.Thread(target=lambda: result.append(q.get_batch(10, 10_000, 30, stop)))
    t.start()
    q.put_nowait(b"a")
    stop.set()
    q.wake()
    t.join(5)
    assert result == [[]]
    assert q.qsize() == 1


def test_join_with_timeout_and_task_done() -> None:
    q = MessageQueue(10)
    q.put_nowait(b"a")
    q.put_nowait(b"b")
    assert q.join(0.01) is False
    batch = q.get_batch(10, 10_000, 0, never())
    q.task_done(len(batch))
    assert q.join(0.01) is True
    with pytest.raises(ValueError):
        q.task_done()


def test_requeue_goes_to_the_head() -> None:
    q = MessageQueue(10)
    for x in (b"1", b"2", b"3"):
        q.put_nowait(x)
    first = q.get_batch(2, 10_000, 0, never())
    q.requeue(first)
    assert q.unfinished_tasks == 3
    assert q.get_batch(10, 10_000, 0, never()) == [b"1", b"2", b"3"]


def test_blocking_put_waits_for_room() -> None:
    q = MessageQueue(1)
    q.put_nowait(b"a")
    with pytest.raises(queue.Full):
        q.put(b"b", timeout=0.01)
    threading.Timer(0.05, lambda: q.get_batch(1, 10_000, 0, never())).start()
    q.put(b"b", timeout=5)
    assert q.qsize() == 1


def test_join_waits_for_promised_items() -> None:
    """Items a feeder has promised count as unfinished before they are put: a flush during a
    spool replay must not return while the replay still has messages to feed."""
    q = MessageQueue(10)
    q.promise(2)
    assert q.unfinished_tasks == 2 and not q.join(timeout=0)
    q.put(b"a", promised=True)
    assert q.get_batch(10, 1 << 20, 0, never()) == [b"a"]
    q.task_done()
    assert not q.join(timeout=0)  # one is still to come
    q.put(b"b", promised=True)
    assert q.get_batch(10, 1 << 20, 0, never()) == [b"b"]
    q.task_done()
    assert q.join(timeout=0) and q.accepted == 2


def test_take_all() -> None:
    q = MessageQueue(10)
    q.put_nowait(b"a")
    q.put_nowait(b"b")
    assert q.take_all() == [b"a", b"b"]
    assert q.qsize() == 0 and q.unfinished_tasks == 2


def test_concurrent_producers_lose_nothing_and_wake_the_consumer() -> None:
    q = MessageQueue(500, batch_size=50)
    producers, per_producer = 4, 5_000
    taken: list[bytes] = []
    stop = threading.Event()

    def consume() -> None:
        while not stop.is_set() or q.qsize():
            batch = q.get_batch(50, 1 << 20, 0.01, stop)
            taken.extend(batch)
            q.task_done(len(batch))

    def produce(k: int) -> None:
        for i in range(per_producer):
            item = f"{k}-{i}".encode()
            while True:
                try:
                    q.put_nowait(item)
                    break
                except queue.Full:
                    time.sleep(0.001)

    consumer = threading.Thread(target=consume)
    consumer.start()
    threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert q.join(timeout=10)
    stop.set()
    q.wake()
    consumer.join(10)
    assert sorted(taken) == sorted(
        f"{k}-{i}".encode() for k in range(producers) for i in range(per_producer)
    )
    for k in range(producers):  # each producer's messages keep their order
        mine = [int(x.split(b"-")[1]) for x in taken if x.startswith(f"{k}-".encode())]
        assert mine == sorted(mine)
    assert q.accepted == producers * per_producer and q.unfinished_tasks == 0
