"""``make profile``: where segment_clone spends its time, in the caller's thread and the consumer.

Four views, all against the counting sink in its own process, consumer running:

1. Plain costs, no profiler: each ``track()`` call (wall clock and the caller thread's CPU) and
   each consumer ``upload()`` (one batch: take it from the queue, build the body, gzip, POST),
   in thread CPU time, so the consumer's waits for the queue or the sink do not count.
2. Stage timings: the steps of both paths timed alone with ``timeit`` (best of 5), free of the
   profiler's per-call overhead, which inflates small functions.
3. cProfile, top entries by own time (and, for the consumer, by cumulative time): the
   caller's ``track()`` loop, and the consumer's ``upload()`` calls profiled inside the
   consumer thread with a thread-CPU clock.

4. Under load: ``SATURATED_EVENTS`` calls back to back, as the throughput benchmark makes them,
   so the queue passes half full and the caller yields to the consumer. It splits the CPU per
   event between the two threads and counts what a thread hand-off costs: context switches per
   batch, the queue's yields, and the thread CPU of one sleep and wake-up on this machine
   (36 to 41 µs on the virtual machine of the README's figures), which weighs on throughput
   once both threads share one GIL.

Only the caller's thread and the consumer's are profiled: cProfile hooks one thread at a time on
Python 3.11 (on 3.12+ it uses ``sys.monitoring``, which covers every thread).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import resource
import statistics
import sys
import time
import timeit
import zlib
from collections.abc import Callable
from typing import Any

import orjson
import requests
from driver import QUEUE_FULL_WAIT
from sink import running_sink
from sink_client import SinkClient
from workload import EVENT, USER_IDS, properties

from segment_clone import Client, message_queue
from segment_clone.consumer import Consumer
from segment_clone.encoding import encode_message
from segment_clone.message_queue import YIELD_SECONDS, MessageQueue
from segment_clone.request import GZIP_LEVEL
from segment_clone.utils import new_message_id, utc_now_iso

CHUNK = 5_000
"""Calls between flushes: well under the default queue size, so no call meets a full queue."""
SATURATED_EVENTS = 100_000
WAKEUPS = 2_000


class BatchMeter:
    """Wraps a consumer's ``upload()`` to add up its thread CPU, optionally under cProfile."""

    def __init__(self, profiler: cProfile.Profile | None) -> None:
        self.profiler = profiler
        self.cpu = 0.0
        self.wall = 0.0
        self.batches = 0

    def attach(self, consumer: Consumer) -> None:
        upload = consumer.upload

        def metered() -> bool:
            start, wall_start = time.thread_time(), time.perf_counter()
            delivered = self.profiler.runcall(upload) if self.profiler else upload()
            self.cpu += time.thread_time() - start
            self.wall += time.perf_counter() - wall_start
            self.batches += delivered
            return delivered

        consumer.upload = metered  # type: ignore[method-assign]


def drive(url: str, events: int, gzip: bool, profile: bool) -> dict[str, Any]:
    """Track ``events`` calls and deliver them; measure (or profile) both threads."""
    client = Client("profile-write-key", host=url, gzip=gzip)
    meter = BatchMeter(cProfile.Profile(time.thread_time) if profile else None)
    for consumer in client.consumers or []:
        meter.attach(consumer)
    caller = cProfile.Profile() if profile else None
    sink = SinkClient(url)
    sink.reset()
    props = properties()
    track = client.track
    clock = time.perf_counter_ns
    walls: list[int] = []
    cpu = 0.0
    for first in range(0, events, CHUNK):
        ids = [USER_IDS[i % len(USER_IDS)] for i in range(first, min(first + CHUNK, events))]
        cpu_start = time.thread_time()
        if caller:
            caller.enable()
        for uid in ids:
            start = clock()
            track(uid, EVENT, props)
            walls.append(clock() - start)
        if caller:
            caller.disable()
        cpu += time.thread_time() - cpu_start
        client.flush()
    sink.wait_for(events)
    client.join()
    return {
        "track_p50_us": statistics.median(walls) / 1000,
        "track_cpu_us": cpu / events * 1e6,
        "batch_cpu_ms": meter.cpu / max(meter.batches, 1) * 1000,
        "consumer_cpu_us_per_event": meter.cpu / events * 1e6,
        "batches": meter.batches,
        "caller": caller,
        "consumer": meter.profiler,
    }


class YieldMeter:
    """Stands in for ``time`` inside ``message_queue`` to count the queue's yields (its only
    sleeps) and the caller's thread CPU in them; everything else passes through."""

    def __init__(self) -> None:
        self.count = 0
        self.cpu = 0.0

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    def sleep(self, seconds: float) -> None:
        start = time.thread_time()
        time.sleep(seconds)
        self.cpu += time.thread_time() - start
        self.count += 1


def saturated(url: str, events: int, gzip: bool) -> dict[str, float]:
    """Track ``events`` calls back to back and deliver them; split the CPU between the threads."""
    client = Client("profile-write-key", host=url, gzip=gzip)
    meter = BatchMeter(None)
    for consumer in client.consumers or []:
        meter.attach(consumer)
    sink = SinkClient(url)
    sink.reset()
    client.track(USER_IDS[0], EVENT, {})  # connect before the clock starts
    client.flush()
    sink.wait_for(1)
    sink.reset()
    meter.cpu = meter.wall = meter.batches = 0
    yields = YieldMeter()
    message_queue.time = yields  # type: ignore[assignment]
    props = properties()
    track = client.track
    try:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        started, process_cpu, caller_cpu = (
            time.perf_counter(),
            time.process_time(),
            time.thread_time(),
        )
        for i in range(events):
            while not track(USER_IDS[i % len(USER_IDS)], EVENT, props)[0]:
                time.sleep(QUEUE_FULL_WAIT)
        caller_cpu = time.thread_time() - caller_cpu
        client.flush()
        sink.wait_for(events)
        wall = time.perf_counter() - started
        process_cpu = time.process_time() - process_cpu
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        message_queue.time = time
    client.join()
    batches = max(meter.batches, 1)
    return {
        "events_per_s": events / wall,
        "cpu_us": process_cpu / events * 1e6,
        "caller_cpu_us": caller_cpu / events * 1e6,
        "consumer_cpu_us": meter.cpu / events * 1e6,
        "consumer_wall_us": meter.wall / events * 1e6,
        "voluntary_per_batch": (after.ru_nvcsw - usage.ru_nvcsw) / batches,
        "involuntary_per_batch": (after.ru_nivcsw - usage.ru_nivcsw) / batches,
        "yields": yields.count,
        "yield_cpu_us": yields.cpu / max(yields.count, 1) * 1e6,
        "batches": batches,
    }


def wakeup_cpu_us() -> float:
    """Thread CPU of one queue-yield-sized sleep and wake-up, with no other thread running."""
    start = time.thread_time()
    for _ in range(WAKEUPS):
        time.sleep(YIELD_SECONDS)
    return (time.thread_time() - start) / WAKEUPS * 1e6


def best_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def stage_timings(url: str, gzip: bool) -> list[tuple[str, float]]:
    """Each step of ``track()`` and of one 100-message batch, timed alone (µs per call)."""
    props = properties()
    quiet = Client("profile-write-key", send=False)
    _, msg = quiet.track("user-00042", EVENT, props)
    data, _ = encode_message(msg)
    queue = MessageQueue(10**9)
    batch = [encode_message(quiet.track(uid, EVENT, props)[1])[0] for uid in USER_IDS[:100]]
    body = orjson.dumps(
        {
            "batch": [orjson.Fragment(m) for m in batch],
            "sentAt": utc_now_iso(),
            "writeKey": "profile-write-key",
        }
    )
    compressed = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    gz_body = compressed.compress(body) + compressed.flush()
    session = requests.Session()
    post_body = gz_body if gzip else body
    headers = {"Content-Type": "application/json"}
    if gzip:
        headers["Content-Encoding"] = "gzip"

    def gzip_body() -> bytes:
        c = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        return c.compress(body) + c.flush()

    def post() -> None:
        session.post(f"{url}/v1/batch", data=post_body, headers=headers, timeout=15)

    return [
        ("track(), send=False (no queue)", best_us(lambda: quiet.track("u", EVENT, props), 5000)),
        ("  utc_now_iso()", best_us(utc_now_iso, 20000)),
        ("  new_message_id()", best_us(new_message_id, 20000)),
        (f"  encode_message() ({len(data)} B)", best_us(lambda: encode_message(msg), 20000)),
        ("  MessageQueue.put_nowait()", best_us(lambda: queue.put_nowait(data), 20000)),
        (
            f"batch body: orjson + Fragment x100 ({len(body):,} B)",
            best_us(
                lambda: orjson.dumps({"batch": [orjson.Fragment(m) for m in batch]}),
                500,
            ),
        ),
        (
            f"batch gzip level {GZIP_LEVEL} ({len(body):,} -> {len(gz_body):,} B)",
            best_us(gzip_body, 200),
        ),
        (
            f"requests.Session.post to the sink ({len(post_body):,} B, wall)",
            best_us(post, 200),
        ),
    ]


def top(profiler: cProfile.Profile | None, limit: int, key: str = "tottime") -> str:
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(key).print_stats(limit)
    text = out.getvalue()
    return text[text.index("   ncalls") :] if "   ncalls" in text else text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    logging.getLogger("segment").addHandler(logging.NullHandler())

    with running_sink() as url:
        plain = drive(url, args.events, args.gzip, profile=False)
        stages = stage_timings(url, args.gzip)
        profiled = drive(url, args.events, args.gzip, profile=True)
        loaded = saturated(url, SATURATED_EVENTS, args.gzip)
    wakeup = wakeup_cpu_us()

    gz = "on" if args.gzip else "off"
    print(f"== Plain costs ({args.events:,} events, gzip {gz}, consumer running) ==")
    print(f"track(): p50 {plain['track_p50_us']:.1f} µs wall, {plain['track_cpu_us']:.1f} µs CPU")
    print(
        f"consumer: {plain['batch_cpu_ms']:.2f} ms CPU per batch of up to 100 "
        f"({plain['batches']} batches), {plain['consumer_cpu_us_per_event']:.1f} µs per event"
    )
    print("\n== Stage timings (µs per call, best of 5, no profiler) ==")
    for name, us in stages:
        print(f"{us:10.2f}  {name}")
    print(f"\n== cProfile: caller thread, {args.events:,} track() calls (wall clock) ==")
    print(top(profiled["caller"], args.top))
    print(
        f"== cProfile: consumer thread, {profiled['batches']} batches (thread CPU clock; "
        "divide by the batch count for per-batch figures) =="
    )
    print(top(profiled["consumer"], args.top))
    print("== the same, by cumulative time ==")
    print(top(profiled["consumer"], args.top, "cumulative"))
    print(f"== Under load ({SATURATED_EVENTS:,} calls back to back, gzip {gz}) ==")
    print(
        f"{loaded['events_per_s']:,.0f} events/s; CPU per event {loaded['cpu_us']:.1f} µs: "
        f"caller thread {loaded['caller_cpu_us']:.1f}, consumer {loaded['consumer_cpu_us']:.1f} "
        f"(the consumer is in upload() {loaded['consumer_wall_us']:.1f} µs of wall time per event)"
    )
    print(
        f"context switches per batch ({loaded['batches']:,.0f} batches): "
        f"{loaded['voluntary_per_batch']:.1f} voluntary, "
        f"{loaded['involuntary_per_batch']:.1f} involuntary"
    )
    print(
        f"queue yields: {loaded['yields']:,.0f}, {loaded['yield_cpu_us']:.0f} µs of caller CPU each"
    )
    print(
        f"one {YIELD_SECONDS * 1e3:.1f} ms sleep and wake-up, no other thread running: "
        f"{wakeup:.0f} µs of thread CPU"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
