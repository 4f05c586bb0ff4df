"""The Markdown report of a ``make bench`` run: medians over the rounds, per-round ratios, the
sink ceiling of the same run and the share of it each SDK reaches, against issue 11's targets.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ceiling import MIXPANEL_BATCH
from results import (
    CEILING,
    MIXPANEL_CEILING,
    Measure,
    label,
    median_of,
    per_round,
    ratio,
    soak_run,
)
from sdks import CLONE, MIXPANEL, MIXPANEL_ASYNC, REFERENCE, TARGETS

SOAK_FLAT = 0.25
"""MiB per minute: a slope under this over the soak's last 8 minutes is flat (2 MiB at most)."""
FORMATS = {
    "track_p50_us": 2,
    "track_p99_us": 1,
    "track_mean_us": 2,
    "events_per_s": 0,
    "cpu_s_per_100k": 2,
    "peak_rss_mib": 1,
    "queued_peak_rss_mib": 1,
}
"""Digits shown for each field."""


class Goal(NamedTuple):
    """A target of issue 11: ``num / den`` (medians over the rounds) compared with ``threshold``."""

    label: str
    num: Measure
    den: Measure
    op: str
    threshold: float
    gzip: tuple[bool, ...] = (False, True)


def _both(sdk_num: str, sdk_den: str, scenario_num: str, scenario_den: str, field: str) -> Any:
    return Measure(sdk_num, scenario_num, field), Measure(sdk_den, scenario_den, field)


GOALS = [
    Goal(
        "`track()` p50 vs analytics-python",
        *_both(CLONE, REFERENCE, "latency", "latency", "track_p50_us"),
        "<=",
        0.08,
    ),
    Goal(
        "throughput, 1 thread, vs analytics-python",
        *_both(CLONE, REFERENCE, "throughput-1", "throughput-1", "events_per_s"),
        ">=",
        8,
    ),
    Goal(
        "throughput, 1 thread, share of the sink ceiling",
        *_both(CLONE, CEILING, "throughput-1", "ceiling", "events_per_s"),
        ">=",
        0.5,
    ),
    Goal(
        "throughput, 4 threads / 1 thread",
        *_both(CLONE, CLONE, "throughput-4", "throughput-1", "events_per_s"),
        ">=",
        0.85,
    ),
    Goal(
        "CPU per event, 4 threads / 1 thread",
        *_both(CLONE, CLONE, "throughput-4", "throughput-1", "cpu_s_per_100k"),
        "<=",
        1.2,
    ),
    Goal(
        "`track()` p50, spool / no spool",
        *_both(CLONE, CLONE, "latency-spool", "latency", "track_p50_us"),
        "<=",
        2,
        (False,),
    ),
    Goal(
        "peak RSS, {events:,} events queued, vs analytics-python",
        *_both(CLONE, REFERENCE, "queued", "queued", "queued_peak_rss_mib"),
        "<=",
        0.5,
        (False,),
    ),
]


MIXPANEL_SYNC = "sc-mixpanel"
ASYNC_GOALS = (
    ("`track()` p50", MIXPANEL, "latency", "latency", "track_p50_us", "<=", 0.35),
    ("`track()` p99", MIXPANEL, "latency", "latency", "track_p99_us", "<=", 0.05),
    ("events/s, 1 thread", MIXPANEL, "throughput-1", "throughput-1", "events_per_s", ">=", 3),
    ("share of the Mixpanel ceiling", CEILING, "throughput-1", MIXPANEL_CEILING, "events_per_s",
     ">=", 0.4),
    ("CPU per event", MIXPANEL, "throughput-1", "throughput-1", "cpu_s_per_100k", "<=", 0.35),
)  # fmt: skip
MIXPANEL_GOALS = [
    *(
        Goal(f"Async: {text}", *_both(MIXPANEL_ASYNC, den, a, b, f), op, bound, (False,))
        for text, den, a, b, f, op, bound in ASYNC_GOALS
    ),
    Goal(
        "Buffered: `track()` p50",
        *_both(MIXPANEL_SYNC, MIXPANEL, "latency", "latency", "track_p50_us"),
        "<=",
        0.6,
        (False,),
    ),
]
"""Issue 21's targets: the facade against mixpanel's ``BufferedConsumer`` in the same run."""


def met(value: float | None, op: str, threshold: float) -> str:
    if value is None:
        return ""
    ok = value <= threshold if op == "<=" else value >= threshold
    return "met" if ok else "**not met**"


def num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def table(header: list[str], rows: list[list[str]], align: str) -> list[str]:
    """Markdown rows; ``align`` has one letter per column: l(eft) or r(ight)."""
    marks = ["---" if a == "l" else "--:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def goals_table(
    results: dict[str, Any], goals: list[Goal] = GOALS, subject: str = "segment_clone"
) -> list[str]:
    rows = []
    events = results["meta"]["events"]
    for goal in goals:
        digits = FORMATS[goal.num.field]
        for gzip in goal.gzip:
            nums, dens = per_round(results, goal.num, gzip), per_round(results, goal.den, gzip)
            value = ratio(median_of(results, goal.num, gzip), median_of(results, goal.den, gzip))
            rounds = ", ".join(num(ratio(n, d), 2) for n, d in zip(nums, dens))
            rows.append(
                [
                    goal.label.format(events=events),
                    "on" if gzip else "off",
                    num(median_of(results, goal.num, gzip), digits),
                    num(median_of(results, goal.den, gzip), digits),
                    num(value, 2),
                    rounds or "-",
                    f"{goal.op} {goal.threshold:g}",
                    met(value, goal.op, goal.threshold),
                ]
            )
    soak = soak_run(results)
    if soak and goals is GOALS:
        slope = soak["rss_slope_mib_per_min"]
        rows.append(
            [
                f"RSS slope, soak at {results['meta']['soak']['rate']:,} events/s",
                "off",
                f"{slope:+.3f} MiB/min",
                "",
                "",
                "",
                f"flat: \\|slope\\| <= {SOAK_FLAT}",
                met(abs(slope), "<=", SOAK_FLAT),
            ]
        )
    header = ["target", "gzip", subject, "against", "ratio", "per round", "goal", ""]
    return table(header, rows, "llrrrrll")


def sdk_table(results: dict[str, Any], gzip: bool) -> list[str]:
    """Every SDK that ran with this gzip setting: medians, and ratios to analytics-python and
    to the sink ceiling of the same gzip setting (for ``AsyncBufferedConsumer``, the ceiling of
    the Mixpanel JSON it sends)."""
    ceilings = {
        sdk: median_of(results, Measure(CEILING, scenario, "events_per_s"), gzip)
        for sdk, scenario in ((None, "ceiling"), (MIXPANEL_ASYNC, MIXPANEL_CEILING))
    }
    reference = median_of(results, Measure(REFERENCE, "throughput-1", "events_per_s"), gzip)
    rows = []
    for sdk in TARGETS:

        def get(scenario: str, field: str, sdk: str = sdk) -> float | None:
            return median_of(results, Measure(sdk, scenario, field), gzip)

        rate = get("throughput-1", "events_per_s")
        if rate is None:
            continue
        share = ratio(rate, ceilings.get(sdk, ceilings[None]))
        rows.append(
            [
                label(sdk, results),
                num(get("latency", "track_p50_us"), 2),
                num(get("latency", "track_p99_us"), 1),
                num(rate, 0),
                num(ratio(rate, reference), 2),
                "-" if share is None else f"{share:.0%}",
                num(get("throughput-1", "cpu_s_per_100k"), 2),
                num(get("throughput-1", "peak_rss_mib"), 1),
                num(get("throughput-1", "retried_calls"), 0),
            ]
        )
    header = [
        "SDK",
        "`track()` p50, µs",
        "p99, µs",
        "events/s, 1 thread",
        "ratio to analytics-python",
        "of sink ceiling",
        "CPU s per 100k",
        "peak RSS, MiB",
        "queue-full retries",
    ]
    return table(header, rows, "lrrrrrrrr")


def threads_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for sdk in TARGETS:
        for gzip in (False, True):

            def get(scenario: str, field: str, sdk: str = sdk, gzip: bool = gzip) -> float | None:
                return median_of(results, Measure(sdk, scenario, field), gzip)

            four = get("throughput-4", "events_per_s")
            if four is None:
                continue
            one = get("throughput-1", "events_per_s")
            cpu1, cpu4 = (
                get("throughput-1", "cpu_s_per_100k"),
                get("throughput-4", "cpu_s_per_100k"),
            )
            rows.append(
                [
                    label(sdk, results),
                    "on" if gzip else "off",
                    num(one, 0),
                    num(four, 0),
                    num(ratio(four, one), 2),
                    num(cpu1, 2),
                    num(cpu4, 2),
                    num(ratio(cpu4, cpu1), 2),
                    num(get("throughput-4", "retried_calls"), 0),
                ]
            )
    header = [
        "SDK",
        "gzip",
        "events/s, 1 thread",
        "4 threads",
        "4 / 1",
        "CPU s per 100k, 1 thread",
        "4 threads",
        "4 / 1",
        "retries, 4 threads",
    ]
    return table(header, rows, "llrrrrrrr")


def queued_table(results: dict[str, Any]) -> list[str]:
    def get(sdk: str, field: str) -> float | None:
        return median_of(results, Measure(sdk, "queued", field), False)

    reference = get(REFERENCE, "queued_peak_rss_mib")
    rows = []
    for sdk in TARGETS:
        peak, before = get(sdk, "queued_peak_rss_mib"), get(sdk, "rss_before_mib")
        if peak is None or before is None:
            continue
        rows.append(
            [
                label(sdk, results),
                num(peak, 1),
                num(before, 1),
                num(peak - before, 1),
                num(ratio(peak, reference), 2),
                num(get(sdk, "queued_enqueue_per_s"), 0),
            ]
        )
    header = [
        "SDK",
        "peak RSS, MiB",
        "before the first event",
        "growth",
        "ratio to analytics-python",
        "enqueue rate, events/s",
    ]
    return table(header, rows, "lrrrrr")


def pair_table(
    results: dict[str, Any], base: Measure, other: Measure, fields: list[tuple[str, str]]
) -> list[str]:
    """Two runs side by side, field by field: the base, the other, their ratio."""
    rows = []
    for text, field in fields:
        a = median_of(results, base._replace(field=field), False)
        b = median_of(results, other._replace(field=field), False)
        digits = FORMATS.get(field, 2)
        rows.append([text, num(a, digits), num(b, digits), num(ratio(b, a), 2)])
    return rows


def spool_table(results: dict[str, Any]) -> list[str]:
    rows = pair_table(
        results,
        Measure(CLONE, "latency", ""),
        Measure(CLONE, "latency-spool", ""),
        [("`track()` p50, µs", "track_p50_us"), ("`track()` p99, µs", "track_p99_us")],
    ) + pair_table(
        results,
        Measure(CLONE, "throughput-1", ""),
        Measure(CLONE, "throughput-spool", ""),
        [("events/s, 1 thread", "events_per_s"), ("CPU s per 100k", "cpu_s_per_100k")],
    )
    return table(["segment_clone, gzip off", "no spool", "`spool_path=`", "ratio"], rows, "lrrr")


def consumers_table(results: dict[str, Any]) -> list[str]:
    """``thread=2`` against the default one consumer thread, 1 producer: whether a second
    consumer still buys anything now that one compresses its next batch while it waits."""
    rows = []
    for gzip in (False, True):

        def get(scenario: str, field: str, gzip: bool = gzip) -> float | None:
            return median_of(results, Measure(CLONE, scenario, field), gzip)

        ceiling = median_of(results, Measure(CEILING, "ceiling", "events_per_s"), gzip)
        one, two = (
            get("throughput-1", "events_per_s"),
            get("throughput-consumers_2", "events_per_s"),
        )
        if two is None:
            continue
        rows.append(
            [
                "on" if gzip else "off",
                num(one, 0),
                num(two, 0),
                num(ratio(two, one), 2),
                num(ratio(one, ceiling), 2),
                num(ratio(two, ceiling), 2),
                num(get("throughput-1", "cpu_s_per_100k"), 2),
                num(get("throughput-consumers_2", "cpu_s_per_100k"), 2),
            ]
        )
    header = [
        "gzip",
        "events/s, `thread=1`",
        "`thread=2`",
        "ratio",
        "share of ceiling, 1",
        "2",
        "CPU s per 100k, 1",
        "2",
    ]
    return table(header, rows, "lrrrrrrr")


def hook_table(results: dict[str, Any]) -> list[str]:
    runs = results["runs"].get(CLONE, {}).get("latency-before_send/gzip-off", [])
    if runs and "skipped" in runs[0]:
        return [f"Skipped: {runs[0]['skipped']}."]
    rows = []
    for text, field in (("`track()` p50, µs", "track_p50_us"), ("mean, µs", "track_mean_us")):
        plain = median_of(results, Measure(CLONE, "latency", field), False)
        hooked = median_of(results, Measure(CLONE, "latency-before_send", field), False)
        cost = hooked - plain if hooked is not None and plain is not None else None
        rows.append([text, num(plain, 2), num(hooked, 2), num(cost, 2)])
    header = ["segment_clone, gzip off", "no hook", "one `before_send` hook", "cost per call"]
    return table(header, rows, "lrrr")


def mixpanel_table(results: dict[str, Any]) -> list[str]:
    fields = [
        ("`track()` p50, µs", "latency", "track_p50_us"),
        ("`track()` p99, µs", "latency", "track_p99_us"),
        ("events/s, 1 thread", "throughput-1", "events_per_s"),
        ("CPU s per 100k", "throughput-1", "cpu_s_per_100k"),
        ("peak RSS, MiB", "throughput-1", "peak_rss_mib"),
    ]
    rows = []
    for text, scenario, field in fields:
        base = median_of(results, Measure("mixpanel", scenario, field), False)
        row = [text, num(base, FORMATS[field])]
        for sdk in ("sc-mixpanel", "sc-mixpanel-async"):
            value = median_of(results, Measure(sdk, scenario, field), False)
            row += [num(value, FORMATS[field]), num(ratio(value, base), 2)]
        rows.append(row)
    header = [
        "gzip off",
        "mixpanel (BufferedConsumer)",
        "facade, BufferedConsumer",
        "ratio",
        "facade, AsyncBufferedConsumer",
        "ratio",
    ]
    return table(header, rows, "lrrrrr")


def ceiling_table(results: dict[str, Any]) -> list[str]:
    rows = []
    for wire, scenario, gzip in (
        ("Segment `/v1/batch`, 100 events", "ceiling", False),
        ("Segment `/v1/batch`, 100 events", "ceiling", True),
        (f"Mixpanel `/track` JSON, {MIXPANEL_BATCH} events", MIXPANEL_CEILING, False),
    ):
        m = Measure(CEILING, scenario, "events_per_s")
        rounds = ", ".join(num(v, 0) for v in per_round(results, m, gzip))
        size = median_of(results, m._replace(field="body_bytes"), gzip)
        best = num(median_of(results, m, gzip), 0)
        rows.append([wire, "on" if gzip else "off", best, rounds or "-", num(size, 0)])
    header = ["request", "gzip", "events/s, best burst", "per round", "request bytes"]
    return table(header, rows, "llrrr")


def soak_lines(results: dict[str, Any]) -> list[str]:
    soak = soak_run(results)
    if not soak:
        return ["Not run (`BENCH_SOAK=1 make bench` adds it)."]
    settings = results["meta"]["soak"]
    samples = soak["rss_samples"]
    fitted = [rss for t, rss in samples if t >= settings["seconds"] - soak["rss_fit_seconds"]]
    return [
        f"segment_clone paced at {settings['rate']:,} events/s for {settings['seconds']:.0f} s, "
        f"gzip off: {soak['events']:,} events at {soak['events_per_s']:,.0f} events/s, "
        f"{soak['cpu_s_per_100k']:.2f} CPU s per 100k, {soak['retried_calls']} queue-full "
        f"retries. Resident set over the last {soak['rss_fit_seconds']:.0f} s: "
        f"{min(fitted):.1f} to {max(fitted):.1f} MiB, slope {soak['rss_slope_mib_per_min']:+.3f} "
        f"MiB/min (flat when under {SOAK_FLAT}); peak RSS {soak['peak_rss_mib']:.1f} MiB. "
        f"{len(samples)} samples are in results.json.",
    ]


def summary(results: dict[str, Any]) -> str:
    meta = results["meta"]
    ceiling = [
        num(median_of(results, Measure(CEILING, "ceiling", "events_per_s"), gzip), 0)
        for gzip in (False, True)
    ]
    return (
        f"{meta['date']}, {meta['cpus']} CPUs, Python {meta['python']}, {meta['rounds']} "
        f"interleaved round(s) in {meta['seconds']:.0f} s (load average "
        f"{meta['load_average'][0]} before, {meta['load_average'][1]} after); "
        f"{meta['events']:,} events of 10 properties per throughput run, {meta['samples']:,} "
        f"timed calls per latency run; medians over the rounds. Sink ceiling in this run: "
        f"{ceiling[0]} events/s gzip off, {ceiling[1]} gzip on."
    )


METHOD = [
    "- **Ratios** are taken between medians of the same run; *per round* divides the two runs "
    "of each round (each round runs every SDK once, in an order that rotates).",
    "- **Sink ceiling**: `ceiling.py` replays one pre-encoded 100-event `/v1/batch` request "
    "over one keep-alive connection as fast as the sink answers, with no SDK running; the best "
    "of 10 bursts of 20,000 events, each round. For Mixpanel (`--wire mixpanel`) the request is "
    f"what `AsyncBufferedConsumer` sends: `/track`, a JSON array of {MIXPANEL_BATCH} events.",
    "- **4 threads**: the same events split over 4 producer threads released by a barrier.",
    "- **Peak RSS queued** (first round only: it barely varies): the SDK posts to a socket "
    "that never answers, so every event stays queued (queues sized to hold them all); "
    "`ru_maxrss` after the last `track()`. Mixpanel's "
    "`BufferedConsumer` posts on the caller's thread and holds at most 50 events, so it has no "
    "such row.",
    "- **Mixpanel**: `mixpanel`'s `BufferedConsumer` and the facade's `BufferedConsumer` are the "
    "like-for-like pair (synchronous, 50 events per POST, no gzip); the facade's "
    "`AsyncBufferedConsumer` is compared with the same upstream consumer, which has no "
    "background one. 4 threads are not run for them: upstream's is not thread-safe.",
]


def render(results: dict[str, Any]) -> str:
    queue_policy = results["meta"]["queue_full_policy"]
    sections = [
        [summary(results)],
        ["### Targets (issue 11)", "", *goals_table(results)],
        ["### Every SDK, gzip off", "", *sdk_table(results, False)],
        ["### Every SDK, gzip on", "", *sdk_table(results, True)],
        ["### 4 producer threads against 1", "", *threads_table(results)],
        [
            f"### Peak RSS with {results['meta']['events']:,} events queued, gzip off",
            "",
            *queued_table(results),
        ],
        ["### The durable spool", "", *spool_table(results)],
        ["### Two consumer threads (`thread=2`), 1 producer", "", *consumers_table(results)],
        ["### One `before_send` hook", "", *hook_table(results)],
        [
            "### Mixpanel: the facade against `mixpanel`",
            "",
            *mixpanel_table(results),
            "",
            "Targets (issue 21):",
            "",
            *goals_table(results, MIXPANEL_GOALS, "facade"),
        ],
        ["### Sink ceiling", "", *ceiling_table(results)],
        ["### Soak", "", *soak_lines(results)],
        ["### Method", "", *METHOD, f"- **Queue full**: {queue_policy}"],
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def readme_block(results: dict[str, Any]) -> str:
    """What docs/performance.md shows: the summary, the targets, every SDK and the chart (a copy
    in docs/assets/, since the site holds only what is under docs/)."""
    return "\n\n".join(
        [
            summary(results),
            "\n".join(goals_table(results)),
            "\n".join(["Every SDK, gzip off:", "", *sdk_table(results, False)]),
            "\n".join(["Every SDK, gzip on:", "", *sdk_table(results, True)]),
            "\n".join(
                [
                    "The Mixpanel facade against mixpanel's `BufferedConsumer` (issue 21):",
                    "",
                    *goals_table(results, MIXPANEL_GOALS, "facade"),
                ]
            ),
            "![make bench](assets/bench-chart.svg)",
        ]
    )
