"""Reading the raw runs that ``run.py`` saves: per-round values and medians of one measure.

``results["runs"][sdk][scenario/gzip-on|off]`` is the list of one SDK's runs of one scenario,
one per round; the sink's ceiling is filed under the pseudo-SDK ``CEILING``.
"""

from __future__ import annotations

import statistics
from typing import Any, NamedTuple

from sdks import CLONE, TARGETS

CEILING = "sink-ceiling"
MIXPANEL_CEILING = "ceiling-mixpanel"
"""The ceiling's scenario for Mixpanel's JSON ``/track`` (``ceiling.py --wire mixpanel``)."""


class Measure(NamedTuple):
    sdk: str
    scenario: str
    field: str


def key(scenario: str, gzip: bool) -> str:
    return f"{scenario}/gzip-{'on' if gzip else 'off'}"


def per_round(results: dict[str, Any], m: Measure, gzip: bool) -> list[float | None]:
    runs = results["runs"].get(m.sdk, {}).get(key(m.scenario, gzip), [])
    return [run.get(m.field) for run in runs]


def median_of(results: dict[str, Any], m: Measure, gzip: bool) -> float | None:
    values = [v for v in per_round(results, m, gzip) if v is not None]
    return statistics.median(values) if values else None


def ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def soak_run(results: dict[str, Any]) -> dict[str, Any] | None:
    runs = results["runs"].get(CLONE, {}).get("soak")
    return runs[0] if runs else None


def label(sdk: str, results: dict[str, Any]) -> str:
    return TARGETS[sdk].label.format(version=results["meta"]["versions"].get(sdk, ""))
