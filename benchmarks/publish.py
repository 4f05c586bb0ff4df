"""Write what ``make bench`` leaves behind: results.json, report.md, chart.svg and the table of
docs/performance.md, from the raw runs of ``run.py``.

``python benchmarks/publish.py [RESULTS_JSON] [--out DIR] [--readme docs/performance.md]``
prints the report again from saved results and, with ``--out``/``--readme``, rewrites the files
without re-running anything.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import chart
from report import readme_block, render
from results import CEILING, Measure, label, median_of
from sdks import TARGETS

README_START = "<!-- make bench: start -->"
README_END = "<!-- make bench: end -->"


def chart_panels(results: dict[str, Any]) -> list[chart.Panel]:
    def bars(scenario: str, field: str, gzips: tuple[bool, ...]) -> list[chart.Bar]:
        out = []
        for sdk in TARGETS:
            if TARGETS[sdk].destinations:  # a rate per destination: their own table
                continue
            for gzip in gzips:
                value = median_of(results, Measure(sdk, scenario, field), gzip)
                if value is not None:
                    out.append(
                        chart.Bar(label(sdk, results), "gzip on" if gzip else "gzip off", value)
                    )
        return out

    ceilings = tuple(
        (f"sink ceiling, gzip {'on' if gzip else 'off'}", value)
        for gzip in (False, True)
        if (value := median_of(results, Measure(CEILING, "ceiling", "events_per_s"), gzip))
    )
    return [
        chart.Panel(
            "Throughput, 1 thread, events/s",
            bars("throughput-1", "events_per_s", (False, True)),
            ceilings,
        ),
        chart.Panel("track() p50, µs, gzip off", bars("latency", "track_p50_us", (False,))),
        chart.Panel(
            f"Peak RSS with {results['meta']['events']:,} events queued, MiB",
            bars("queued", "queued_peak_rss_mib", (False,)),
        ),
    ]


def update_readme(path: Path, block: str) -> None:
    text = path.read_text(encoding="utf-8")
    head, start, rest = text.partition(README_START)
    _, end, tail = rest.partition(README_END)
    if not start or not end:
        raise SystemExit(f"{path} has no {README_START} ... {README_END} block")
    path.write_text(f"{head}{start}\n{block}\n{end}{tail}", encoding="utf-8")


def publish(results: dict[str, Any], out: Path, readme: Path | None) -> None:
    """Write results.json, report.md and chart.svg to ``out``; rewrite the README's table."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    report = "# make bench\n\n![make bench](chart.svg)\n\n" + render(results)
    (out / "report.md").write_text(report, encoding="utf-8")
    (out / "chart.svg").write_text(chart.svg(chart_panels(results)), encoding="utf-8")
    if readme:
        update_readme(readme, readme_block(results))
        (readme.parent / "assets").mkdir(exist_ok=True)
        (readme.parent / "assets" / "bench-chart.svg").write_bytes((out / "chart.svg").read_bytes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="?", default="benchmarks/results/results.json")
    parser.add_argument("--out", type=Path, help="rewrite report.md and chart.svg there")
    parser.add_argument("--readme", type=Path, help="rewrite this README's table")
    args = parser.parse_args()
    results = json.loads(Path(args.results).read_text(encoding="utf-8"))
    if args.out or args.readme:
        publish(results, args.out or Path(args.results).parent, args.readme)
    print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
