"""``make compat``: mixpanel 5.4.1's own feature-flag tests, run against segment_clone.mixpanel.

Downloads the ``mixpanel==5.4.1`` wheel into ``.compat/`` (a scratch folder, never committed),
takes the tests it ships under ``mixpanel/flags/`` (``test_*.py`` and ``test-data/``), points
them at ``segment_clone.mixpanel.flags`` (upstream's ``json_logic`` import becomes our own
evaluator, ``segment_clone.mixpanel.flags.json_logic``) and runs them in one pytest process:
they mock HTTP with respx, so nothing leaves the machine, and a guard refuses any address beyond
127.0.0.1 all the same.

Prints every failure with the documented guarantee of ours it contradicts, then ``P/T passed``.
Exits 1 when the pass rate is under 95 % or a failure is not one of the known ones.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ElementTree
import zipfile
from pathlib import Path

from upstream import GUARD, SCRATCH, download_wheel

UPSTREAM = "mixpanel==5.4.1"
GOAL = 0.95
SUITE_TIMEOUT = 300

KNOWN: dict[str, str] = {}
"""Failures we expect, each with the documented behaviour of ours that it contradicts."""

_REWRITES = (
    (
        re.compile(r"^import json_logic$", re.M),
        "from segment_clone.mixpanel.flags import json_logic",
    ),
    (re.compile(r"^from \.(\w+) import", re.M), r"from segment_clone.mixpanel.flags.\1 import"),
    (re.compile(r"(?<![\w.])mixpanel\.(flags|credentials)\b"), r"segment_clone.mixpanel.\1"),
)


def rewrite(text: str) -> str:
    """Upstream's test module, importing segment_clone's flags instead of ``mixpanel``'s."""
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return text


def fetch_suite(python: str) -> Path:
    """The upstream flag tests, rewritten, in ``.compat/mixpanel-flags/``."""
    suite = SCRATCH / "mixpanel-flags"
    (suite / "test-data").mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(download_wheel(python, UPSTREAM, "mixpanel-5.4.1-*.whl")) as wheel:
        for name in wheel.namelist():
            path = Path(name)
            if name.startswith("mixpanel/flags/test-data/"):
                (suite / "test-data" / path.name).write_bytes(wheel.read(name))
            elif name.startswith("mixpanel/flags/test_") and name.endswith(".py"):
                (suite / path.name).write_text(rewrite(wheel.read(name).decode()))
    (suite / "conftest.py").write_text(GUARD)
    (suite / "pytest.ini").write_text(
        "[pytest]\naddopts = -p no:cacheprovider\nasyncio_mode = auto\n"
        "asyncio_default_fixture_loop_scope = function\n"
    )
    return suite


def run(python: str, suite: Path) -> list[tuple[str, bool, str]]:
    """Every test's id, whether it passed, and the last line of its failure."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.xml"
        done = subprocess.run(
            [
                python,
                "-m",
                "pytest",
                "-q",
                "-W",
                "ignore::DeprecationWarning",
                f"--junitxml={report}",
                ".",
            ],
            cwd=suite,
            capture_output=True,
            text=True,
            timeout=SUITE_TIMEOUT,
            check=False,
        )
        if not report.exists():  # pytest could not even start: say why, count nothing
            print(done.stdout[-2000:], done.stderr[-2000:], sep="\n", file=sys.stderr)
            return []
        results = []
        for case in ElementTree.parse(report).iter("testcase"):
            test = f"{case.get('classname')}::{case.get('name')}"
            problem = case.find("failure")
            if problem is None:
                problem = case.find("error")
            skipped = case.find("skipped") is not None
            message = "" if problem is None else problem.get("message") or ""
            detail = message.splitlines()[0] if message else ""
            results.append((test, problem is None and not skipped, detail))
        return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter with segment_clone")
    args = parser.parse_args()
    results = run(args.python, fetch_suite(args.python))
    passed = sum(ok for _, ok, _ in results)
    unexpected = 0
    for test, ok, detail in sorted(results):
        if not ok:
            why = KNOWN.get(test)
            unexpected += why is None
            print(f"FAIL {test}\n     {detail}\n     {why or 'UNEXPECTED'}")
    total = len(results)
    print(
        f"mixpanel 5.4.1 feature-flag suite: {passed}/{total} passed ({passed / max(total, 1):.1%})"
    )
    return 0 if total and passed >= GOAL * total and not unexpected else 1


if __name__ == "__main__":
    sys.exit(main())
