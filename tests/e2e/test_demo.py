"""``make demo`` end to end: the collector and the examples as real processes."""

from __future__ import annotations

from pathlib import Path

import segment_clone

from ..processes import run_file

ROOT = Path(segment_clone.__file__).resolve().parent.parent


def test_the_demo_loses_nothing() -> None:
    result = run_file(ROOT / "examples" / "demo.py")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = dict(line.split(None, 1) for line in result.stdout.splitlines()[-11:] if line.strip())
    assert summary["sent"].startswith("2026 ")
    assert summary["stored"] == "2026"
    assert summary["lost"] == "0"
    assert summary["duplicates"].startswith("0 ")
    assert "track 1809" in summary["by"]
    assert summary["both"] == "20 Segment messages, 20 Mixpanel records, 20 linked"
    assert summary["flags"] == "6 exposure events sent, 6 stored"
    assert "local   ada        new_checkout   treatment = True" in result.stdout
    assert summary["OK:"].startswith("every message arrived exactly once")


def test_the_benchmark_runs_and_checks_what_was_stored() -> None:
    bench = ROOT / "benchmarks" / "collector_bench.py"
    result = run_file(bench, "--seconds", "0.3", "--max-events-per-second", "3000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "events/s" in result.stdout
    assert "stored" in result.stdout


def test_the_benchmark_compares_ingest_without_and_with_a_plan() -> None:
    bench = ROOT / "benchmarks" / "collector_bench.py"
    result = run_file(
        bench, "--compare-plan", "--seconds", "0.3", "--max-events-per-second", "3000"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "with a 50-rule plan:" in result.stdout.splitlines()[-2]
    assert "events/s without a plan" in result.stdout
