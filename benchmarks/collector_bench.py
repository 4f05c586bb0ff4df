"""How many events a second the collector accepts: 100-event gzip batches over keep-alive.

Starts ``python -m segment_clone.collector`` as a subprocess on a free port with a fresh
database, encodes and compresses every batch up front (so the client spends almost nothing per
request), then POSTs them over ``--connections`` keep-alive connections for ``--seconds``.
At the end it checks that the store holds every accepted event exactly once.

``--compare-plan`` measures the collector without a tracking plan and with a 50-rule one
(``--plan-rules``), alternating over ``--rounds``, and reports the medians and their ratio
against the target (the plan must keep at least 80 % of the throughput). Every benchmark event
passes the plan, as most real events do: this is the cost of checking, not of reporting.

    .venv/bin/python benchmarks/collector_bench.py [--seconds 5] [--connections 2]
    .venv/bin/python benchmarks/collector_bench.py --compare-plan [--rounds 3]
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
TARGET_PLAN_RATIO = 0.8
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


def make_plan(rules: int) -> dict:
    """Segment Public API rules: ``Order Completed`` as the benchmark sends it, a common rule
    every message meets, and ``rules - 2`` other events of seven properties each."""
    fields = {"type": "string"}, {"type": "number"}, {"type": "integer"}, {"type": "boolean"}
    order = {
        "plan": {"enum": ["free", "pro"]},
        "price": {"type": "number", "minimum": 0},
        "quantity": {"type": "integer"},
        "currency": {"type": "string", "enum": ["EUR", "USD"]},
        "coupon": {"type": ["string", "null"]},
        "tags": {"type": "array", "items": {"type": "string"}},
        "cart": {"type": "object", "properties": {"total": {"type": "number"}}},
        "referrer": {"type": "string", "format": "uri"},
        "first_visit": {"type": "boolean"},
        "session": {"type": "string"},
    }

    def track(key: str, properties: dict, required: list[str]) -> dict:
        props = {"type": "object", "properties": properties, "required": required}
        schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
                  "properties": {"properties": props}, "required": ["properties"]}  # fmt: skip
        return {"key": key, "type": "TRACK", "version": 1, "jsonSchema": schema}

    common = {
        "type": "object",
        "properties": {
            "messageId": {"type": "string"},
            "timestamp": {"type": "string"},
            "context": {"type": "object", "properties": {"library": {"type": "object"}}},
        },
        "required": ["type", "messageId", "timestamp"],
    }
    others = [
        track(f"Event {n}", {f"p{i}": fields[(n + i) % 4] for i in range(7)}, ["p0", "p1"])
        for n in range(rules - 2)
    ]
    order_rule = track("Order Completed", order, ["plan", "price", "currency"])
    return {"data": {"rules": [order_rule, {"key": None, "type": "COMMON", "jsonSchema": common},
                               *others]}}  # fmt: skip


def start_collector(db: Path, *options: str) -> tuple[subprocess.Popen[str], str, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "segment_clone.collector", "--port", "0", "--db", str(db),
         *options],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
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


def measure(args: argparse.Namespace, bodies: list[bytes], *options: str) -> tuple[float, float]:
    """One fresh collector, warmed up, then timed; prints the run and returns events/s and the
    collector's CPU seconds per 100,000 events (0 where /proc is missing)."""
    with tempfile.TemporaryDirectory() as tmp:
        proc, host, port = start_collector(Path(tmp) / "bench.db", *options)
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
    cpu_per_100k = 0.0
    if cpu_before is not None and cpu_after is not None:
        cpu = cpu_after - cpu_before
        cpu_per_100k = cpu / events * 100_000
        print(
            f"collector CPU: {cpu:.2f} s ({cpu / result['elapsed']:.0%} of one core), "
            f"{cpu_per_100k:.2f} s per 100,000 events"
        )
    expected = (warmup + result["requests"]) * args.batch_size
    print(f"stored {total} of {expected} events", flush=True)
    if total != expected:
        raise SystemExit(f"the collector stored {total} events, not {expected}")
    return rate, cpu_per_100k


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--max-events-per-second", type=int, default=60_000,
                        help="sizes the pre-built bodies: seconds * this many events")  # fmt: skip
    parser.add_argument("--compare-plan", action="store_true",
                        help="measure without and with a tracking plan")  # fmt: skip
    parser.add_argument("--plan-rules", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1, help="with --compare-plan")
    parser.add_argument("--record", type=Path, metavar="MD",
                        help="with --compare-plan: also write the result here")  # fmt: skip
    args = parser.parse_args()

    count = int(args.seconds * args.max_events_per_second / args.batch_size) + 20
    print(f"preparing {count} gzip batches of {args.batch_size} events ...", flush=True)
    bodies = [make_batch(args.batch_size) for _ in range(count)]
    if not args.compare_plan:
        rate, _ = measure(args, bodies)
        verdict = "met" if rate >= TARGET_EVENTS_PER_SECOND else "NOT met"
        print(f"target {TARGET_EVENTS_PER_SECOND:,}/s {verdict}")
        return 0

    rates: dict[str, list[float]] = {"without": [], "with": []}
    cpus: dict[str, list[float]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory() as tmp:
        plan = Path(tmp) / "plan.json"
        plan.write_text(json.dumps(make_plan(args.plan_rules)))
        for r in range(args.rounds):
            order = ("without", "with") if r % 2 == 0 else ("with", "without")
            for name in order:
                print(f"[round {r + 1}/{args.rounds}] {name} a {args.plan_rules}-rule plan:")
                options = ("--plan", str(plan)) if name == "with" else ()
                rate, cpu = measure(args, bodies, *options)
                rates[name].append(rate)
                cpus[name].append(cpu)
    without, with_plan = (statistics.median(rates[k]) for k in ("without", "with"))
    ratio = with_plan / without
    verdict = "met" if ratio >= TARGET_PLAN_RATIO else "NOT met"
    print(
        f"\ncollector ingest, median of {args.rounds} round(s): {without:,.0f} events/s without"
        f" a plan, {with_plan:,.0f} events/s with a {args.plan_rules}-rule plan: {ratio:.0%}"
        f" (target {TARGET_PLAN_RATIO:.0%}: {verdict})"
    )
    cpu_without, cpu_with = (statistics.median(cpus[k]) for k in ("without", "with"))
    if cpu_with:
        print(
            f"collector CPU per 100,000 events, median: {cpu_without:.2f} s without, "
            f"{cpu_with:.2f} s with the plan ({cpu_without / cpu_with:.0%} as many events per"
            " CPU second; less sensitive than events/s to other load on the machine)"
        )
    if args.record is not None:
        args.record.write_text(plan_report(args, rates, cpus, verdict), encoding="utf-8")
        print(f"written to {args.record}")
    return 0


def plan_report(
    args: argparse.Namespace,
    rates: dict[str, list[float]],
    cpus: dict[str, list[float]],
    verdict: str,
) -> str:
    """The ``--compare-plan`` result as the Markdown that ``make bench`` keeps in results/."""
    rows = [  # label, without, with, format, whether more is better
        ("events/s", rates["without"], rates["with"], "{:,.0f}", True),
        ("collector CPU s per 100,000 events", cpus["without"], cpus["with"], "{:.2f}", False),
    ]
    lines = [
        "# Collector ingest with a tracking plan",
        "",
        f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"`benchmarks/collector_bench.py --compare-plan --rounds {args.rounds}`: 100-event gzip "
        f"batches over {args.connections} keep-alive connections, a fresh collector per run, "
        f"without and with a {args.plan_rules}-rule plan alternating. Target: with the plan, at "
        f"least {TARGET_PLAN_RATIO:.0%} of the throughput without: **{verdict}**.",
        "",
        "| measure | without a plan | with the plan | ratio | per round |",
        "|---|--:|--:|--:|---|",
    ]
    for label, without, with_plan, fmt, more_is_better in rows:
        a, b = statistics.median(without), statistics.median(with_plan)
        if not a or not b:  # no CPU figures without /proc
            continue
        ratio = b / a if more_is_better else a / b  # both read as the share kept
        rounds = ", ".join(f"{fmt.format(w)} / {fmt.format(p)}" for w, p in zip(without, with_plan))
        lines.append(f"| {label} | {fmt.format(a)} | {fmt.format(b)} | {ratio:.0%} | {rounds} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
