"""``make demo``: the SDK against a real local collector, with an honest count at the end.

Starts ``python -m segment_clone.collector`` on a free port with a fresh database in a
temporary folder, failing 20 % of requests with 503 so that retries happen. Runs
``quickstart.py`` and ``multithreaded.py`` against it, stops the collector, and compares the
messageIds each example's SDK accepted with the ones the collector stored.
``two_destinations.py`` sends with one client to both of the collector's faces, Segment's and
Mixpanel's; every Mixpanel record it made must link back to its Segment message. The collector
also serves the Mixpanel feature flags of ``feature_flags.json``, which ``feature_flags.py``
evaluates locally and remotely; the exposure events it sent must all be stored. Exits 1 if any
message was lost.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
EXAMPLES = ("quickstart.py", "multithreaded.py", "two_destinations.py")
BOTH = EXAMPLES.index("two_destinations.py")
WRITE_KEY = "demo-write-key"
FAIL_RATE = 0.2


def start_collector(db: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "segment_clone.collector", "--port", "0", "--db", str(db),
            "--write-key", WRITE_KEY, "--fail-rate", str(FAIL_RATE), "--fail-status", "503",
            "--flags", str(HERE / "feature_flags.json"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("listening on "):
        proc.kill()
        raise SystemExit(f"the collector did not start: {line!r}")
    return proc, line.removeprefix("listening on ")


def run_example(name: str, url: str, report: Path) -> dict[str, Any]:
    env = {
        **os.environ,
        "SEGMENT_HOST": url,
        "MIXPANEL_API_HOST": url,
        "SEGMENT_WRITE_KEY": WRITE_KEY,
        "SEGMENT_DEMO_REPORT": str(report),
    }
    subprocess.run([sys.executable, str(HERE / name)], env=env, check=True, timeout=120)
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def main() -> int:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="segment-clone-demo-") as tmp:
        db = Path(tmp) / "events.db"
        collector, url = start_collector(db)
        try:
            print(f"collector: {url}, database {db}, failing {FAIL_RATE:.0%} of requests (503)")
            reports = [run_example(name, url, Path(tmp) / f"{name}.json") for name in EXAMPLES]
            print()
            flags = run_example("feature_flags.py", url, Path(tmp) / "feature_flags.json")
            stored = get(f"{url}/api/events?source=segment")["events"]
            exposures = get(f"{url}/api/events?source=mixpanel&event=%24experiment_started")
            stats = get(f"{url}/api/stats")
        finally:
            collector.send_signal(signal.SIGTERM)
            collector.wait(10)
    elapsed = time.perf_counter() - started

    sent = {mid for r in reports for mid in r["sent"]}
    stored_ids = Counter(m["messageId"] for m in stored)
    lost = sent - set(stored_ids)
    unexpected = set(stored_ids) - sent
    by_type = Counter(m["type"] for m in stored)
    retried = sum(r["stats"]["retried"] for r in reports)
    print()
    print(f"sent        {len(sent)} (messages the SDK accepted)")
    print(f"stored      {len(stored)}")
    print("by type     " + ", ".join(f"{t} {n}" for t, n in by_type.most_common()))
    print(f"duplicates  {stats['duplicates']} (refused by messageId)")
    print(f"lost        {len(lost)}")
    print(f"faults      {stats['faults']['injected']} injected, {retried} retries by the SDK")
    print(f"both        {reports[BOTH]['both']}")
    print(f"flags       {flags['exposures']} exposure events sent, {exposures['total']} stored")
    print(f"elapsed     {elapsed:.2f} s")
    if unexpected:
        print(f"unexpected  {len(unexpected)} stored messages that no example sent")
    if collector.returncode != 0:
        print(f"the collector exited with status {collector.returncode}")
    ok = not lost and not unexpected and collector.returncode == 0
    ok = ok and exposures["total"] == flags["exposures"]
    both = len(reports[BOTH]["sent"])
    ok = ok and reports[BOTH]["both"] == (
        f"{both} Segment messages, {both} Mixpanel records, {both} linked"
    )
    print("OK: every message arrived exactly once" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
