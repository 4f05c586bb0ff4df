"""``make bench``: segment_clone and its Mixpanel facade against four peer SDKs, side by side.

Starts the counting sink (``sink.py``) in its own process. Each round first measures the sink's
ceiling (``ceiling.py``), then runs ``driver.py`` once per scenario, gzip setting and SDK, each
in a fresh interpreter from that SDK's virtualenv: segment_clone's is the project's ``.venv``, a
peer's is ``.bench/venv-<dist>``, made by the Makefile. The SDK order rotates every round, so no
SDK always inherits a warm or a busy machine. The report (``report.py``, written out by
``publish.py``) gives medians over the rounds, per-round ratios and the share of the ceiling
each SDK reaches.

Settings come from flags or the environment: ``BENCH_ROUNDS`` (default 3), ``BENCH_QUICK=1``
(one round of 20,000 events, written to ``.bench/quick``) and ``BENCH_SOAK=1`` (adds the soak:
segment_clone paced at 20,000 events/s for 10 minutes). A full run writes ``results.json``,
``report.md`` and ``chart.svg`` to ``benchmarks/results/`` and the table of docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from driver import QUEUE_FULL_WAIT
from publish import publish
from report import render
from results import CEILING, MIXPANEL_CEILING, key
from sdks import CLONE, MIXPANEL_ASYNC, REFERENCE, TARGETS
from sink import running_sink

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DRIVER = HERE / "driver.py"
RUN_TIMEOUT = 900


@dataclass(frozen=True)
class Scenario:
    """One row of the plan: the driver's arguments, which SDKs run it and with which gzip
    settings (gzip on is skipped for SDKs that cannot compress)."""

    args: tuple[str, ...]
    sdks: tuple[str, ...]
    gzip: tuple[bool, ...] = (False, True)
    every_round: bool = True
    """False: the first round only, for a measure that barely varies and takes long."""


EVERY_SDK = tuple(TARGETS)
QUEUEING = tuple(
    name for name, target in TARGETS.items() if target.queues and not target.destinations
)
SCENARIOS = {
    "latency": Scenario(("--scenario", "latency"), EVERY_SDK),
    "throughput-1": Scenario(("--scenario", "throughput", "--threads", "1"), EVERY_SDK),
    "throughput-4": Scenario(("--scenario", "throughput", "--threads", "4"), (CLONE, REFERENCE)),
    "queued": Scenario(("--scenario", "queued"), QUEUEING, (False,), every_round=False),
    "latency-spool": Scenario(("--scenario", "latency", "--setup", "spool"), (CLONE,), (False,)),
    "throughput-spool": Scenario(
        ("--scenario", "throughput", "--setup", "spool"), (CLONE,), (False,)
    ),
    "throughput-consumers_2": Scenario(
        ("--scenario", "throughput", "--setup", "two-consumers"), (CLONE,)
    ),
    "latency-before_send": Scenario(
        ("--scenario", "latency", "--setup", "before-send"), (CLONE,), (False,)
    ),
}
SOAK = Scenario(("--scenario", "soak"), (CLONE,), (False,))
QUEUE_FULL_POLICY = (
    "Throughput and soak runs never drop: when `track()` is turned away by a full queue "
    f"(10,000 by default in every SDK), the producer waits {QUEUE_FULL_WAIT * 1000:.0f} ms and "
    "repeats the call, identically for every SDK; those retried calls are counted and their "
    "CPU is included."
)


def flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=int(os.environ.get("BENCH_ROUNDS") or 3))
    parser.add_argument("--quick", action="store_true", default=flag("BENCH_QUICK"))
    parser.add_argument("--soak", action="store_true", default=flag("BENCH_SOAK"))
    parser.add_argument("--soak-seconds", type=float, default=600.0)
    parser.add_argument("--soak-rate", type=int, default=20_000, help="events per second")
    parser.add_argument("--events", type=int, help="events per throughput run (100,000)")
    parser.add_argument("--samples", type=int, help="timed track() calls per latency run (5,000)")
    parser.add_argument("--warmup", type=int, help="untimed calls before them (1,000)")
    parser.add_argument("--out", type=Path, help="benchmarks/results (quick: .bench/quick)")
    parser.add_argument("--readme", type=Path, help="page whose table to rewrite")
    parser.add_argument(
        "--sdks",
        type=lambda text: tuple(text.split(",")),
        help=f"a subset to run, comma-separated (written to .bench/subset): {', '.join(TARGETS)}",
    )
    parser.add_argument(
        "--scenarios",
        type=lambda text: tuple(text.split(",")),
        help=f"a subset to run, comma-separated: {', '.join(SCENARIOS)}",
    )
    args = parser.parse_args()
    unknown = set(args.sdks or ()) - set(TARGETS) | set(args.scenarios or ()) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    quick = args.quick
    args.rounds = 1 if quick else args.rounds
    args.events = args.events or (20_000 if quick else 100_000)
    args.samples = args.samples or (2_000 if quick else 5_000)
    args.warmup = args.warmup or (500 if quick else 1_000)
    partial = bool(args.sdks or args.scenarios)  # never rewrites the published results
    args.out = args.out or (
        ROOT / ".bench/quick" if quick else ROOT / ".bench/subset" if partial else HERE / "results"
    )
    args.readme = args.readme or (None if quick or partial else ROOT / "docs" / "performance.md")
    if args.samples + args.warmup > 10_000:
        parser.error("--samples + --warmup must stay under the default queue size (10,000)")
    return args


def python_of(sdk: str) -> str:
    target = TARGETS[sdk]
    if not target.peer:
        return sys.executable
    python = ROOT / ".bench" / f"venv-{target.dist}" / "bin" / "python"
    if not python.exists():
        raise SystemExit(f"{python} not found: `make bench` creates it")
    return str(python)


def run_json(cmd: list[str]) -> dict[str, Any]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False)
    if out.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout.splitlines()[-1])
    if result.get("blocked") or result.get("unrouted"):
        raise SystemExit(f"traffic went astray in {' '.join(cmd)}: {result}")
    return result


def driver_cmd(sdk: str, scenario: Scenario, gzip: bool, url: str, args: Any) -> list[str]:
    cmd = [python_of(sdk), str(DRIVER), "--sdk", sdk, "--host", url, *scenario.args]
    cmd += ["--events", str(args.events), "--samples", str(args.samples)]
    cmd += ["--warmup", str(args.warmup), "--rate", str(args.soak_rate)]
    return cmd + ["--seconds", str(args.soak_seconds)] + (["--gzip"] if gzip else [])


def describe(result: dict[str, Any]) -> str:
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    if "track_p50_us" in result:
        return f"p50 {result['track_p50_us']:.1f} µs, p99 {result['track_p99_us']:.1f} µs"
    if "queued_peak_rss_mib" in result:
        return f"peak RSS {result['queued_peak_rss_mib']:.1f} MiB, {result['rejected']} rejected"
    text = f"{result['events_per_s']:,.0f} events/s"
    if "cpu_s_per_100k" in result:
        text += f", {result['cpu_s_per_100k']:.2f} CPU s/100k, {result['retried_calls']} retried"
    if "rss_slope_mib_per_min" in result:
        text += f", RSS slope {result['rss_slope_mib_per_min']:+.3f} MiB/min"
    return text


def first(runs: dict[str, list[Any]]) -> dict[str, Any]:
    """An SDK's first run, for what every run reports alike (version, Python)."""
    return next(iter(runs.values()))[0]


def rotated(sdks: tuple[str, ...], r: int) -> list[str]:
    return list(sdks[r % len(sdks) :] + sdks[: r % len(sdks)])


def main() -> int:
    args = parse_args()
    runs: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    started, load_before = time.monotonic(), os.getloadavg()[0]

    def record(sdk: str, key: str, cmd: list[str], label: str) -> dict[str, Any]:
        t0 = time.monotonic()
        result = run_json(cmd)
        runs[sdk][key].append(result)
        print(f"{label} {key:<30} {sdk:<18} {describe(result)} ({time.monotonic() - t0:.1f} s)")
        sys.stdout.flush()
        return result

    with running_sink() as url:
        for r in range(args.rounds):
            label = f"[round {r + 1}/{args.rounds}]"
            for gzip in (False, True):
                cmd = [sys.executable, str(HERE / "ceiling.py"), "--host", url]
                cmd += ["--gzip"] if gzip else []
                record(CEILING, key("ceiling", gzip), cmd, label)
            if MIXPANEL_ASYNC in (args.sdks or TARGETS):
                cmd = [
                    sys.executable,
                    str(HERE / "ceiling.py"),
                    "--host",
                    url,
                    "--wire",
                    "mixpanel",
                ]
                record(CEILING, key(MIXPANEL_CEILING, False), cmd, label)
            for name, scenario in SCENARIOS.items():
                if (r and not scenario.every_round) or name not in (args.scenarios or SCENARIOS):
                    continue
                chosen = tuple(sdk for sdk in scenario.sdks if sdk in (args.sdks or TARGETS))
                for gzip in scenario.gzip:
                    for sdk in rotated(chosen, r):
                        if gzip and not TARGETS[sdk].gzip:
                            continue
                        cmd = driver_cmd(sdk, scenario, gzip, url, args)
                        record(sdk, key(name, gzip), cmd, label)
        soak = None
        if args.soak:
            soak = record(CLONE, "soak", driver_cmd(CLONE, SOAK, False, url, args), "[soak]")
    sdks = [sdk for sdk in TARGETS if sdk in runs]
    results = {
        "meta": {
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "cpus": os.cpu_count(),
            "rounds": args.rounds,
            "events": args.events,
            "samples": args.samples,
            "warmup": args.warmup,
            "seconds": round(time.monotonic() - started, 1),
            "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "versions": {sdk: first(runs[sdk])["version"] for sdk in sdks},
            "python": first(runs[sdks[0]])["python"],
            "queue_full_policy": QUEUE_FULL_POLICY,
            "soak": {"seconds": args.soak_seconds, "rate": args.soak_rate} if soak else None,
        },
        "runs": runs,
    }
    publish(results, args.out, args.readme)
    print()
    print(render(results))
    print(f"\nWritten to {args.out}" + (f" and {args.readme}" if args.readme else ""))
    print(f"Total time: {results['meta']['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
