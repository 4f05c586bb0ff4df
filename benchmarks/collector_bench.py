"""How many events a second the collector accepts: 100-event gzip batches over keep-alive.

Starts ``python -m segment_clone.collector`` as a subprocess on a free port with a fresh
database, encodes and compresses every batch up front (so the client spends almost nothing per
request), then POSTs them over ``--connections`` keep-alive connections for ``--seconds``.
At the end it checks that the store holds every accepted event exactly once.

    .venv/bin/python benchmarks/collector_bench.py [--seconds 5] [--connections 2]
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

TARGET_EVENTS_PER_SECOND = 20_000
GZIP_LEVEL = 6  # what the SDK uses


def make_batch(size: int) -> bytes:
    """One gzip body of ``size`` track messages shaped like the SDK's."""
    now = time.strftime("%Y-%m-%dT%H:%M:%S.000+00:00", time.gmtime())
    messages = [
        {
            "integrations": {},
            "anonymousId": None,
            "properties": {
                "plan": "pro",
                "price": 49.99,
                "quantity": i % 7,
                "currency": "EUR",
                "coupon": None,
                "tags": ["a", "b", "c"],
                "cart": {"items": [{"sku": "sku-1", "qty": 2}], "total": 99.98},
                "referrer": "https://example.com/pricing",
                "first_visit": i % 2 == 0,
                "session": "s-12345",
            },
            "timestamp": now,
            "context": {"library": {"name": "segment-clone", "version": "bench"}},
            "userId": f"user-{i % 1000}",
            "type": "track",
            "event": "Order Completed",
            "messageId": str(uuid.uuid4()),
        }
        for i in range(size)
    ]
    body = json.dumps({"batch": messages, "sentAt": now, "writeKey": "bench"}).encode()
    return gzip.compress(body, GZIP_LEVEL)


def start_collector(db: Path) -> tuple[subprocess.Popen[str], str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "segment_clone.collector", "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on http://"):
        proc.kill()
        raise SystemExit(f"collector did not start: {line!r}")
    host, port = line.removeprefix("listening on http://").rsplit(":", 1)
    return proc, host, int(port)


def post(conn: http.client.HTTPConnection, body: bytes) -> None:
    conn.request(
        "POST",
        "/v1/batch",
        body=body,
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    response = conn.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"collector answered {response.status}")


def run(host: str, port: int, bodies: list[bytes], connections: int, seconds: float) -> dict:
    """Send ``bodies`` until they run out or ``seconds`` pass; returns counts and latencies."""
    next_index = itertools.count().__next__  # atomic under the GIL
    latencies: list[list[float]] = [[] for _ in range(connections)]
    sent = [0] * connections
    deadline = time.perf_counter() + seconds

    def worker(n: int) -> None:
        conn = http.client.HTTPConnection(host, port)
        try:
            while time.perf_counter() < deadline:
                i = next_index()
                if i >= len(bodies):
                    return
                t0 = time.perf_counter()
                post(conn, bodies[i])
                latencies[n].append(time.perf_counter() - t0)
                sent[n] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(connections)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    flat = sorted(x for lat in latencies for x in lat)
    return {"requests": sum(sent), "elapsed": elapsed, "latencies": flat}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of process ``pid`` (Linux ``/proc``), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stored_total(host: str, port: int) -> int:
    conn = http.client.HTTPConnection(host, port)
    try:
        conn.request("GET", "/api/stats")
        return int(json.loads(conn.getresponse().read())["total"])
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-events-per-second", type=int, default=60_000,
                        help="sizes the pre-built bodies: seconds * this many events")  # fmt: skip
    args = parser.parse_args()

    count = int(args.seconds * args.max_events_per_second / args.batch_size) + 20
    print(f"preparing {count} gzip batches of {args.batch_size} events ...", flush=True)
    bodies = [make_batch(args.batch_size) for _ in range(count)]
    with tempfile.TemporaryDirectory() as tmp:
        proc, host, port = start_collector(Path(tmp) / "bench.db")
        try:
            warmup = run(host, port, bodies[:20], args.connections, 60)["requests"]
            cpu_before = cpu_seconds(proc.pid)
            result = run(host, port, bodies[20:], args.connections, args.seconds)
            cpu_after = cpu_seconds(proc.pid)
            total = stored_total(host, port)
        finally:
            proc.terminate()
            proc.wait(10)

    events = result["requests"] * args.batch_size
    rate = events / result["elapsed"]
    lat = result["latencies"]
    p99 = lat[int(len(lat) * 0.99)] if lat else 0.0
    print(
        f"accepted {events} events in {result['elapsed']:.2f} s over {args.connections} "
        f"keep-alive connection(s): {rate:,.0f} events/s "
        f"({result['requests'] / result['elapsed']:,.0f} requests/s; latency p50 "
        f"{statistics.median(lat) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms)"
    )
    if cpu_before is not None and cpu_after is not None:
        cpu = cpu_after - cpu_before
        print(
            f"collector CPU: {cpu:.2f} s ({cpu / result['elapsed']:.0%} of one core), "
            f"{cpu / events * 100_000:.2f} s per 100,000 events"
        )
    expected = (warmup + result["requests"]) * args.batch_size
    verdict = "met" if rate >= TARGET_EVENTS_PER_SECOND else "NOT met"
    print(f"stored {total} of {expected} events; target {TARGET_EVENTS_PER_SECOND:,}/s {verdict}")
    return 0 if total == expected else 1


if __name__ == "__main__":
    sys.exit(main())
