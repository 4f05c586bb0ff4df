"""The README stays a front door, and its comparison quotes the latest ``make bench`` report.

``make bench`` rewrites ``benchmarks/results/report.md`` and the table of
``docs/performance.md``; the README's comparison is written by hand from that report, so a new
run fails this test until the README quotes it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
REPORT = ROOT / "benchmarks" / "results" / "report.md"
MAX_LINES = 250
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


def comparison_figures() -> list[str]:
    """The numbers of the README's comparison section, code spans and link targets left out."""
    text = README.read_text(encoding="utf-8").split("\n## Compared with", 1)[1]
    section = text.split("\n## ", 1)[0]
    section = re.sub(r"`[^`]*`", "", re.sub(r"\]\([^)]*\)", "]", section))
    return NUMBER.findall(section)


def test_the_readme_is_at_most_250_lines() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"README.md has {lines} lines; move the rest into docs/"


def test_the_comparison_quotes_the_latest_report() -> None:
    """Each figure of the comparison is one of the report's, at the README's precision."""
    report = [float(n.replace(",", "")) for n in NUMBER.findall(REPORT.read_text("utf-8"))]
    figures = comparison_figures()
    assert len(figures) > 20, "the README's comparison table is missing"
    stale = []
    for figure in figures:
        decimals = len(figure.partition(".")[2])
        value = float(figure.replace(",", ""))
        if not any(round(measured, decimals) == value for measured in report):
            stale.append(figure)
    assert not stale, f"README.md quotes figures that {REPORT.name} does not hold: {stale}"
