"""Turn the raw runs of ``run.py`` into medians, ratios and the Markdown table of issue 7.

``python benchmarks/report.py [.bench/results.json]`` prints the table again from a results
file, so the README table can be regenerated without re-running the benchmark.
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any, NamedTuple

CLONE = "segment_clone"
PEER = "segment"
SDK_LABELS = {CLONE: "segment_clone", PEER: "segment-analytics-python"}


class Metric(NamedTuple):
    label: str
    scenario: str
    field: str
    target: str | None  # "<= x" or ">= x" on the ratio segment_clone / peer
    digits: int


METRICS = [
    Metric("`track()` p50, µs", "latency", "track_p50_us", "<= 0.25", 1),
    Metric("`track()` p99, µs", "latency", "track_p99_us", None, 1),
    Metric("throughput, 1 thread, events/s", "throughput-1", "events_per_s", ">= 5", 0),
    Metric("throughput, 4 threads, events/s", "throughput-4", "events_per_s", ">= 5", 0),
    Metric("CPU s per 100k events, 1 thread", "throughput-1", "cpu_s_per_100k", "<= 0.3", 2),
    Metric("CPU s per 100k events, 4 threads", "throughput-4", "cpu_s_per_100k", "<= 0.3", 2),
    Metric("peak RSS, MiB, 1 thread", "throughput-1", "peak_rss_mib", "<= 1", 1),
    Metric("peak RSS, MiB, 4 threads", "throughput-4", "peak_rss_mib", "<= 1", 1),
    Metric("queue-full calls retried, 1 thread", "throughput-1", "retried_calls", None, 0),
    Metric("queue-full calls retried, 4 threads", "throughput-4", "retried_calls", None, 0),
]


def scenario_key(scenario: str, gzip: bool) -> str:
    return f"{scenario}/gzip-{'on' if gzip else 'off'}"


def median_of(results: dict[str, Any], sdk: str, key: str, field: str) -> float | None:
    runs = results["runs"].get(sdk, {}).get(key, [])
    return statistics.median(r[field] for r in runs) if runs else None


def verdict(ratio: float | None, target: str | None) -> str:
    if target is None or ratio is None:
        return ""
    op, threshold = target.split()
    met = ratio <= float(threshold) if op == "<=" else ratio >= float(threshold)
    return "met" if met else "**not met**"


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per metric and gzip setting: both medians, the ratio and the verdict."""
    table = []
    for gzip in (False, True):
        for m in METRICS:
            key = scenario_key(m.scenario, gzip)
            clone = median_of(results, CLONE, key, m.field)
            peer = median_of(results, PEER, key, m.field)
            ratio = clone / peer if clone is not None and peer else None
            table.append(
                {
                    "metric": m.label,
                    "gzip": "on" if gzip else "off",
                    CLONE: clone,
                    PEER: peer,
                    "ratio": ratio,
                    "target": m.target,
                    "verdict": verdict(ratio, m.target),
                    "digits": m.digits,
                }
            )
    return table


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def render(results: dict[str, Any]) -> str:
    meta = results["meta"]
    lines = [
        f"{meta['date']}, {meta['cpus']} CPUs, {meta['rounds']} round(s) interleaved, "
        f"{meta['events']:,} events per throughput run, {meta['samples']:,} timed calls per "
        f"latency run; medians. Ratio = {SDK_LABELS[CLONE]} / {SDK_LABELS[PEER]} "
        f"{meta['versions'].get(PEER, '')}.",
        "",
        f"| metric | gzip | {SDK_LABELS[CLONE]} | {SDK_LABELS[PEER]} | ratio | target | |",
        "|---|---|--:|--:|--:|--:|---|",
    ]
    for row in rows(results):
        lines.append(
            f"| {row['metric']} | {row['gzip']} | {_num(row[CLONE], row['digits'])} "
            f"| {_num(row[PEER], row['digits'])} | {_num(row['ratio'], 2)} "
            f"| {row['target'] or ''} | {row['verdict']} |"
        )
    return "\n".join(lines)


def render_hook_cost(results: dict[str, Any]) -> str:
    """What one ``before_send`` hook (removing one property) adds to each ``track()`` call:
    segment_clone's latency runs with and without it, gzip off, medians over the rounds."""
    lines = [
        "| `track()`, segment_clone, gzip off | no hook | one `before_send` hook | cost per call |",
        "|---|--:|--:|--:|",
    ]
    for label, field in (("p50, µs", "track_p50_us"), ("mean, µs", "track_mean_us")):
        plain = median_of(results, CLONE, scenario_key("latency", False), field)
        hooked = median_of(results, CLONE, scenario_key("latency-before_send", False), field)
        cost = hooked - plain if hooked is not None and plain is not None else None
        lines.append(f"| {label} | {_num(plain, 1)} | {_num(hooked, 1)} | {_num(cost, 1)} |")
    return "\n".join(lines)


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else ".bench/results.json"
    with open(path, encoding="utf-8") as f:
        results = json.load(f)
    print(render(results))
    print()
    print(render_hook_cost(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
