"""Drive one SDK through one benchmark scenario and print the measurements as one JSON line.

The same script runs segment_clone (in the project's ``.venv``) and segment-analytics-python (in
its own virtualenv); only the imported module differs. Each run is a fresh interpreter, so peak
RSS and CPU time belong to that SDK and that scenario alone. Standard library only.

Scenarios:
  latency     caller-thread cost of each ``track()`` call, timed with ``perf_counter_ns`` while
              the consumer delivers to the sink; a warm-up is tracked and flushed first, and the
              measured calls stay under the default queue size so no call meets a full queue.
  throughput  ``--events`` calls split across ``--threads`` producer threads, timed from the
              first ``track()`` until ``flush()`` returned and the sink counted every event.

``--before-send`` (segment_clone only) gives the client one ``before_send`` hook that removes a
property, so the latency scenario shows what a hook costs each ``track()`` call.

Queue-full policy (throughput): when ``track()`` returns ``(False, msg)`` the producer waits
``QUEUE_FULL_WAIT`` seconds and makes the same call again, identically for both SDKs. Every
event is then delivered and the run measures sustained throughput; the retried calls are
counted and reported, and their CPU is included (an application that must not lose events
pays it too).
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import json
import logging
import os
import platform
import resource
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

SDK_MODULES = {"segment_clone": "segment_clone", "segment": "segment.analytics"}
EVENT = "Order Completed"
QUEUE_FULL_WAIT = 0.005
SINK_TIMEOUT = 300.0
USER_IDS = [f"user-{i:05d}" for i in range(1000)]


def properties() -> dict[str, Any]:
    """Ten realistic properties: strings, ints, floats, a bool, a nested dict with a list and
    a datetime."""
    return {
        "order_id": "ord_7f3a9c2e41",
        "currency": "EUR",
        "coupon": "SPRING-24",
        "quantity": 3,
        "loyalty_points": 1250,
        "total": 149.97,
        "discount": 0.15,
        "first_order": False,
        "cart": {
            "store": "web-eu",
            "items": [
                {"sku": "SKU-1001", "price": 49.99, "qty": 1},
                {"sku": "SKU-2002", "price": 49.99, "qty": 2},
            ],
        },
        "ordered_at": datetime(2024, 5, 17, 14, 3, 12, 250000, tzinfo=timezone.utc),
    }


class Sink:
    """The driver's own keep-alive connection to the sink's /count and /reset."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)

    def _call(self, method: str, path: str) -> dict[str, int]:
        self.conn.request(method, path)
        return json.loads(self.conn.getresponse().read())  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._call("POST", "/reset")

    def count(self) -> dict[str, int]:
        return self._call("GET", "/count")

    def wait_for(self, events: int, timeout: float = SINK_TIMEOUT) -> dict[str, int]:
        """Poll until the sink has acknowledged ``events`` messages (or raise)."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.count()
            if counts["events"] >= events or time.monotonic() > deadline:
                break
            time.sleep(0.002)
        if counts["events"] != events:
            raise RuntimeError(f"sink counted {counts['events']} events, expected {events}")
        return counts


def drop_coupon(message: dict[str, Any]) -> dict[str, Any]:
    """The ``before_send`` of the benchmark: one hook that removes one property."""
    message["properties"].pop("coupon", None)
    return message


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def load_sdk(sdk: str) -> Any:
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"  # never route the sink through a proxy
    # Both SDKs log on the "segment" logger; a handler keeps queue-full warnings off stderr
    # while the SDKs still pay for emitting them.
    logging.getLogger("segment").addHandler(logging.NullHandler())
    return importlib.import_module(SDK_MODULES[sdk])


def percentile(sorted_values: list[int], q: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def run_latency(client: Any, sink: Sink, samples: int, warmup: int) -> dict[str, Any]:
    props = properties()
    track = client.track
    n_ids = len(USER_IDS)
    for i in range(warmup):
        track(USER_IDS[i % n_ids], EVENT, props)
    client.flush()
    sink.wait_for(warmup)

    clock = time.perf_counter_ns
    timings = [0] * samples
    rejected = 0
    for i in range(samples):
        start = clock()
        ok, _ = track(USER_IDS[i % n_ids], EVENT, props)
        timings[i] = clock() - start
        rejected += not ok
    client.flush()
    sink.wait_for(warmup + samples - rejected)

    overhead = sorted(-clock() + clock() for _ in range(1000))
    timings.sort()
    return {
        "track_p50_us": percentile(timings, 0.50) / 1000,
        "track_p99_us": percentile(timings, 0.99) / 1000,
        "track_mean_us": sum(timings) / samples / 1000,
        "timer_overhead_ns": percentile(overhead, 0.5),
        "samples": samples,
        "rejected": rejected,
    }


def run_throughput(client: Any, sink: Sink, events: int, threads: int) -> dict[str, Any]:
    props = properties()
    shares = [events // threads + (k < events % threads) for k in range(threads)]
    retried = [0] * threads
    start = threading.Barrier(threads + 1)

    def produce(k: int) -> None:
        track = client.track
        n_ids = len(USER_IDS)
        start.wait()
        for i in range(shares[k]):
            while not track(USER_IDS[i % n_ids], EVENT, props)[0]:
                retried[k] += 1
                time.sleep(QUEUE_FULL_WAIT)

    producers = [threading.Thread(target=produce, args=(k,)) for k in range(threads)]
    for p in producers:
        p.start()
    rss_before = peak_rss_mib()
    start.wait()
    t0, cpu0 = time.perf_counter(), time.process_time()
    for p in producers:
        p.join()
    enqueued = time.perf_counter()
    client.flush()
    counts = sink.wait_for(events)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "events_per_s": events / elapsed,
        "enqueue_per_s": events / (enqueued - t0),
        "seconds": elapsed,
        "cpu_s_per_100k": cpu * 100_000 / events,
        "peak_rss_mib": peak_rss_mib(),
        "rss_before_mib": rss_before,
        "retried_calls": sum(retried),
        "requests": counts["requests"],
        "body_bytes": counts["bytes"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdk", choices=sorted(SDK_MODULES), required=True)
    parser.add_argument("--scenario", choices=["latency", "throughput"], required=True)
    parser.add_argument("--host", required=True, help="the sink's base URL")
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--before-send", action="store_true", help="one hook (segment_clone)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=5_000)
    parser.add_argument("--warmup", type=int, default=1_000)
    args = parser.parse_args()

    sink = Sink(args.host)
    sink.reset()
    module = load_sdk(args.sdk)
    hook = {"before_send": drop_coupon} if args.before_send else {}
    client = module.Client("bench-write-key", host=args.host, gzip=args.gzip, **hook)
    if args.scenario == "latency":
        result = run_latency(client, sink, args.samples, args.warmup)
    else:
        result = run_throughput(client, sink, args.events, args.threads)
    client.join()
    result.update(version=module.VERSION, python=platform.python_version())
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
