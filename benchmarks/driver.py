"""Drive one SDK through one benchmark scenario and print the measurements as one JSON line.

``run.py`` starts this script once per SDK, scenario and round, with the interpreter of that
SDK's virtualenv, so peak RSS and CPU time belong to that SDK and that scenario alone. The SDKs
are reached through ``sdks.py``; standard library only otherwise.

Scenarios (``--scenario``):
  latency     caller-thread cost of each ``track()`` call, timed with ``perf_counter_ns`` while
              the consumer delivers to the sink; a warm-up is tracked and flushed first, and the
              measured calls stay under the default queue size so no call meets a full queue.
  throughput  ``--events`` calls split across ``--threads`` producer threads, timed from the
              first ``track()`` until ``flush()`` returned and the sink counted every event;
              with several destinations, until each destination's path counted them all
              (``events_per_s_<name>``, and ``events_per_s`` for the last of them).
  queued      peak RSS with ``--events`` queued: the SDK posts to a socket that listens but never
              accepts, so its consumer's first POST hangs and every later event stays in a queue
              made big enough for all of them. The process then leaves with ``os._exit``.
  soak        ``--seconds`` at a paced ``--rate``, sampling the resident set every
              ``SOAK_SAMPLE_EVERY`` seconds; the slope is fitted over the last 80 % of the run.

Setups (``--setup``) add client keywords: ``spool`` (``spool_path`` in a temporary directory),
``before-send`` (one hook that removes a property) and ``two-consumers`` (``thread=2``). An
SDK whose client lacks the keyword prints ``{"skipped": ...}`` instead of measuring.

Queue-full policy (throughput, soak): when ``track()`` is turned away by a full queue, the
producer waits ``QUEUE_FULL_WAIT`` seconds and makes the same call again, identically for every
SDK. Every event is then delivered; the retried calls are counted and their CPU is included.
A segment_clone client with ``destinations`` waits for room instead (``FAN_OUT_POLICY``).

No traffic leaves the machine: ``NO_PROXY`` covers loopback, and ``socket.connect`` refuses any
address but 127.0.0.1 and reports the attempt under ``blocked``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from sdks import LOGGERS, TARGETS, Options, Target
from sink_client import SinkClient
from workload import USER_IDS, properties

QUEUE_FULL_WAIT = 0.005
HOLD_TIMEOUT = 120.0
"""The HTTP timeout while queueing against the silent socket: longer than any queued run."""
FAN_OUT_POLICY = {"queue_full_policy": "block", "queue_full_timeout": HOLD_TIMEOUT}
"""Throughput runs of a client with destinations wait for room in a full lane: ``track()`` is
accepted when any lane took the event, so calling again after one lane turned it away would
send it twice to the others."""
SOAK_SAMPLE_EVERY = 5.0
SOAK_TICK = 0.01
SOAK_FIT_FROM = 0.2
"""The soak's slope ignores the first 20 % of the run (warm-up: pools, caches, arenas)."""


def guard_network() -> list[str]:
    """Refuse connections to anything but loopback; return the list of refused addresses."""
    blocked: list[str] = []
    connect = socket.socket.connect

    def loopback_only(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in (
            "127.0.0.1",
            "::1",
        ):
            blocked.append(str(address[0]))
            raise ConnectionRefusedError(f"benchmark: {address[0]} is not loopback")
        connect(sock, address)

    socket.socket.connect = loopback_only  # type: ignore[method-assign]
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    return blocked


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mib() -> float:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def percentile(sorted_values: list[int], q: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run_latency(target: Target, args: argparse.Namespace, opts: Options) -> dict[str, Any]:
    sdk = target.open(opts)
    sink = SinkClient(args.host)
    props = properties()
    track = sdk.track
    n_ids = len(USER_IDS)
    for i in range(args.warmup):
        track(USER_IDS[i % n_ids], props)
    sdk.flush()
    sink.wait_for(args.warmup * max(1, len(target.destinations)))

    clock = time.perf_counter_ns
    timings = [0] * args.samples
    rejected = 0
    for i in range(args.samples):
        start = clock()
        ok = track(USER_IDS[i % n_ids], props)
        timings[i] = clock() - start
        rejected += not ok
    sdk.flush()
    sink.wait_for((args.warmup + args.samples - rejected) * max(1, len(target.destinations)))
    sdk.close()

    overhead = sorted(-clock() + clock() for _ in range(1000))
    timings.sort()
    return {
        "track_p50_us": percentile(timings, 0.50) / 1000,
        "track_p99_us": percentile(timings, 0.99) / 1000,
        "track_mean_us": sum(timings) / args.samples / 1000,
        "timer_overhead_ns": percentile(overhead, 0.5),
        "samples": args.samples,
        "rejected": rejected,
    }


def run_throughput(target: Target, args: argparse.Namespace, opts: Options) -> dict[str, Any]:
    if target.destinations:
        opts = replace(opts, extra={**FAN_OUT_POLICY, **opts.extra})
    sdk = target.open(opts)
    sink = SinkClient(args.host)
    props = properties()
    threads, events = args.threads, args.events
    shares = [events // threads + (k < events % threads) for k in range(threads)]
    retried = [0] * threads
    failed: list[BaseException] = []
    start = threading.Barrier(threads + 1)

    def produce(k: int) -> None:
        track = sdk.track
        n_ids = len(USER_IDS)
        start.wait()
        try:
            for i in range(shares[k]):
                while not track(USER_IDS[i % n_ids], props):
                    retried[k] += 1
                    time.sleep(QUEUE_FULL_WAIT)
        except BaseException as e:  # ends the run now, not after the sink's timeout
            failed.append(e)
            raise

    producers = [threading.Thread(target=produce, args=(k,)) for k in range(threads)]
    for p in producers:
        p.start()
    rss_before = peak_rss_mib()
    start.wait()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for p in producers:
        p.join()
    if failed:
        raise RuntimeError(f"a producer failed: {failed[0]!r}") from failed[0]
    enqueued = time.perf_counter()
    by_destination: dict[str, float] = {}
    if target.destinations:
        paths = dict(target.destinations)
        flusher = threading.Thread(target=sdk.flush)
        flusher.start()
        done, counts = sink.wait_each(events, tuple(paths.values()))
        cpu = time.process_time() - cpu0
        flusher.join()
        by_destination = {f"events_per_s_{n}": events / (done[p] - t0) for n, p in paths.items()}
        elapsed = max(done.values()) - t0
    else:
        sdk.flush()
        counts = sink.wait_for(events)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sdk.close()
    return {
        **by_destination,
        "events_per_s": events / elapsed,
        "enqueue_per_s": events / (enqueued - t0),
        "seconds": elapsed,
        "cpu_s_per_100k": cpu * 100_000 / events,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_mib": rss_before,
        "retried_calls": sum(retried),
        "requests": counts["requests"],
        "body_bytes": counts["bytes"],
        "unrouted": counts["unrouted"],
    }


def run_queued(target: Target, args: argparse.Namespace, opts: Options) -> dict[str, Any]:
    silent = socket.create_server(("127.0.0.1", 0), backlog=16)  # listens, never accepts
    host = f"http://127.0.0.1:{silent.getsockname()[1]}"
    queue_size = args.events + 1000  # room for every event, whatever the consumer took first
    sdk = target.open(replace(opts, host=host, max_queue_size=queue_size, timeout=HOLD_TIMEOUT))
    props = properties()
    track = sdk.track
    n_ids = len(USER_IDS)
    rss_before = peak_rss_mib()
    t0 = time.perf_counter()
    rejected = sum(not track(USER_IDS[i % n_ids], props) for i in range(args.events))
    elapsed = time.perf_counter() - t0
    return {
        "queued_peak_rss_mib": peak_rss_mib(),
        "rss_before_mib": rss_before,
        "queued_enqueue_per_s": args.events / elapsed,
        "rejected": rejected,
    }


def run_soak(target: Target, args: argparse.Namespace, opts: Options) -> dict[str, Any]:
    sdk = target.open(opts)
    sink = SinkClient(args.host)
    props = properties()
    track = sdk.track
    n_ids = len(USER_IDS)
    samples: list[tuple[float, float]] = []
    sent = retried = 0
    t0, cpu0 = time.perf_counter(), time.process_time()
    while (now := time.perf_counter() - t0) < args.seconds:
        if now >= len(samples) * SOAK_SAMPLE_EVERY:
            samples.append((round(now, 2), round(current_rss_mib(), 2)))
        due = int(args.rate * now)
        while sent < due:
            if track(USER_IDS[sent % n_ids], props):
                sent += 1
            else:
                retried += 1
                time.sleep(QUEUE_FULL_WAIT)
        time.sleep(SOAK_TICK)
    paced = time.perf_counter() - t0
    sdk.flush()
    sink.wait_for(sent)
    cpu = time.process_time() - cpu0
    sdk.close()
    fitted = [(t, rss) for t, rss in samples if t >= args.seconds * SOAK_FIT_FROM]
    slope = statistics.linear_regression([t for t, _ in fitted], [r for _, r in fitted]).slope
    return {
        "events": sent,
        "events_per_s": sent / paced,
        "cpu_s_per_100k": cpu * 100_000 / sent,
        "retried_calls": retried,
        "rss_samples": samples,
        "rss_slope_mib_per_min": slope * 60,
        "rss_fit_seconds": args.seconds * (1 - SOAK_FIT_FROM),
        "peak_rss_mib": peak_rss_mib(),
    }


SCENARIOS: dict[str, Callable[[Target, argparse.Namespace, Options], dict[str, Any]]] = {
    "latency": run_latency,
    "throughput": run_throughput,
    "queued": run_queued,
    "soak": run_soak,
}


def drop_coupon(message: dict[str, Any]) -> dict[str, Any]:
    """The ``before_send`` of the benchmark: one hook that removes one property."""
    message["properties"].pop("coupon", None)
    return message


SETUPS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "plain": lambda tmp: {},
    "spool": lambda tmp: {"spool_path": str(tmp / "spool.db")},
    "before-send": lambda tmp: {"before_send": drop_coupon},
    "two-consumers": lambda tmp: {"thread": 2},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdk", choices=sorted(TARGETS), required=True)
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    parser.add_argument("--setup", choices=sorted(SETUPS), default="plain")
    parser.add_argument("--host", required=True, help="the sink's base URL")
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=5_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    parser.add_argument("--rate", type=int, default=20_000, help="soak: events per second")
    parser.add_argument("--seconds", type=float, default=600.0, help="soak: duration")
    args = parser.parse_args()

    blocked = guard_network()
    for name in LOGGERS:
        logging.getLogger(name).addHandler(logging.NullHandler())
    target = TARGETS[args.sdk]
    SinkClient(args.host).reset()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        extra = SETUPS[args.setup](Path(tmp))
        missing = [keyword for keyword in extra if not target.accepts(keyword)]
        if missing:
            print(json.dumps({"skipped": f"{target.label} has no {', '.join(missing)}="}))
            return 0
        opts = Options(args.host, gzip=args.gzip, extra=extra)
        result = SCENARIOS[args.scenario](target, args, opts)
        result.update(version=target.version(), python=platform.python_version(), blocked=blocked)
        print(json.dumps(result), flush=True)
    if args.scenario == "queued":
        os._exit(0)  # what is queued was never meant to be delivered: skip the exit-time flush
    return 0


if __name__ == "__main__":
    sys.exit(main())
