"""``make bench``: segment_clone against segment-analytics-python, side by side.

Starts the counting sink in its own process, then runs ``driver.py`` once per SDK, scenario and
round, each in a fresh interpreter: segment_clone from the project's ``.venv`` and the peer from
its own virtualenv. The two SDKs alternate run by run (the one that goes first swaps every round,
so neither always inherits a warm or a busy machine), and the table reports medians over the
rounds and the ratio segment_clone / segment-analytics-python against the targets of issue 7.

Settings come from flags or the environment: ``BENCH_ROUNDS`` (default 5) and ``BENCH_QUICK=1``
(one round of 20,000 events, a smoke run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from driver import QUEUE_FULL_WAIT
from report import CLONE, PEER, render, render_hook_cost, scenario_key
from sink import running_sink

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "driver.py"
DRIVER_TIMEOUT = 600

SCENARIOS = {
    "latency": ["--scenario", "latency"],
    "throughput-1": ["--scenario", "throughput", "--threads", "1"],
    "throughput-4": ["--scenario", "throughput", "--threads", "4"],
}
HOOK_SCENARIO = "latency-before_send"
"""segment_clone only (the peer has no hooks), gzip off: ``track()`` with one ``before_send``
hook, against segment_clone's own ``latency`` run of the same round."""
CLONE_ONLY = {HOOK_SCENARIO: ["--scenario", "latency", "--before-send"]}
QUEUE_FULL_POLICY = (
    "Throughput runs never drop: when track() returns (False, msg) because the queue (default "
    f"10,000) is full, the producer waits {QUEUE_FULL_WAIT * 1000:.0f} ms and repeats the call, "
    "identically for both SDKs; those retried calls are counted and their CPU is included."
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS") or 5))
    parser.add_argument(
        "--quick", action="store_true", default=os.environ.get("BENCH_QUICK", "") not in ("", "0")
    )
    parser.add_argument("--events", type=int, help="events per throughput run (100,000)")
    parser.add_argument("--samples", type=int, help="timed track() calls per latency run (5,000)")
    parser.add_argument("--warmup", type=int, help="untimed calls before them (1,000)")
    parser.add_argument("--peer-python", default=".bench/peer-venv/bin/python")
    parser.add_argument("--clone-python", default=sys.executable)
    parser.add_argument(
        "--json", help="where to write results (.bench/results.json; quick: results-quick.json)"
    )
    args = parser.parse_args()
    quick = args.quick
    args.rounds = 1 if quick else args.rounds
    args.events = args.events or (20_000 if quick else 100_000)
    args.samples = args.samples or (2_000 if quick else 5_000)
    args.warmup = args.warmup or (500 if quick else 1_000)
    args.json = args.json or f".bench/results{'-quick' if quick else ''}.json"
    if args.samples + args.warmup > 10_000:
        parser.error("--samples + --warmup must stay under the default queue size (10,000)")
    return args


def run_driver(python: str, sdk: str, url: str, scenario: str, gzip: bool, args: Any) -> Any:
    cmd = [python, str(DRIVER), "--sdk", sdk, "--host", url, *{**SCENARIOS, **CLONE_ONLY}[scenario]]
    cmd += ["--events", str(args.events), "--samples", str(args.samples)]
    cmd += ["--warmup", str(args.warmup)] + (["--gzip"] if gzip else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=DRIVER_TIMEOUT, check=False)
    if out.returncode != 0:
        raise SystemExit(f"driver failed ({' '.join(cmd)}):\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])


def describe(scenario: str, result: dict[str, Any]) -> str:
    if scenario == "latency":
        return f"p50 {result['track_p50_us']:.1f} µs, p99 {result['track_p99_us']:.1f} µs"
    return (
        f"{result['events_per_s']:,.0f} events/s, {result['cpu_s_per_100k']:.2f} CPU s/100k, "
        f"peak RSS {result['peak_rss_mib']:.0f} MiB, {result['retried_calls']} retried"
    )


def main() -> int:
    args = parse_args()
    if not Path(args.peer_python).exists():
        raise SystemExit(f"{args.peer_python} not found: run `make bench` to create it")
    pythons = {CLONE: args.clone_python, PEER: args.peer_python}
    runs: dict[str, dict[str, list[Any]]] = {CLONE: defaultdict(list), PEER: defaultdict(list)}
    started = time.monotonic()
    with running_sink() as url:
        for r in range(args.rounds):
            order = [CLONE, PEER] if r % 2 == 0 else [PEER, CLONE]
            for gzip in (False, True):
                for scenario in SCENARIOS:
                    for sdk in order:
                        t0 = time.monotonic()
                        result = run_driver(pythons[sdk], sdk, url, scenario, gzip, args)
                        runs[sdk][scenario_key(scenario, gzip)].append(result)
                        print(
                            f"[round {r + 1}/{args.rounds}] {scenario:<12} gzip "
                            f"{'on ' if gzip else 'off'} {sdk:<13} {describe(scenario, result)}"
                            f" ({time.monotonic() - t0:.1f} s)",
                            flush=True,
                        )
            result = run_driver(pythons[CLONE], CLONE, url, HOOK_SCENARIO, False, args)
            runs[CLONE][scenario_key(HOOK_SCENARIO, False)].append(result)
            print(
                f"[round {r + 1}/{args.rounds}] {HOOK_SCENARIO} {describe('latency', result)}",
                flush=True,
            )
    results = {
        "meta": {
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "cpus": os.cpu_count(),
            "rounds": args.rounds,
            "events": args.events,
            "samples": args.samples,
            "warmup": args.warmup,
            "seconds": round(time.monotonic() - started, 1),
            "versions": {sdk: runs[sdk]["latency/gzip-off"][0]["version"] for sdk in runs},
            "python": {sdk: runs[sdk]["latency/gzip-off"][0]["python"] for sdk in runs},
            "queue_full_policy": QUEUE_FULL_POLICY,
        },
        "runs": runs,
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=1), encoding="utf-8")
    print()
    print(render(results))
    print()
    print(render_hook_cost(results))
    print()
    print(QUEUE_FULL_POLICY)
    print(f"Raw runs: {args.json} (python benchmarks/report.py {args.json} re-renders the table)")
    print(f"Total time: {results['meta']['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
