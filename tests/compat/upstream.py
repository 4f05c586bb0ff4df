"""``make compat``: analytics-python 2.4.0's own test suite, run against segment_clone.

Downloads the ``segment-analytics-python==2.4.0`` wheel into ``.compat/`` (a scratch folder,
never committed), takes the tests it ships under ``segment/analytics/test/``, rewrites
``segment.analytics`` to ``segment_clone`` and runs every test in its own process, because the
suite shares module globals between tests and leaves threads behind.

The tests that talk to Segment's servers are not part of the figure: no test here may send
traffic beyond 127.0.0.1 (a guard in the suite's conftest refuses any other address). They are
run a second time with segment_clone's default host pointed at a local collector instead, and
reported on a line of their own.

Prints every failure with the documented guarantee of ours it contradicts, then ``P/T
passed``. Exits 1 when the pass rate is under 95 % or a failure is not one of the known ones.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

UPSTREAM = "segment-analytics-python==2.4.0"
ROOT = Path(__file__).resolve().parents[2]
SCRATCH = ROOT / ".compat"
GOAL = 0.95
TEST_TIMEOUT = 90
NETWORK_DELAY_MS = 100.0
"""How long the collector holds each batch before answering: about a round trip to Segment's
servers, which these tests were written against. ``test_should_timeout`` expects a 0.1 ms read
timeout to expire; it is rounded up to 1 ms, and on a busy machine the client can wake late and
find a loopback answer already waiting (it failed so in one CI run)."""

NEEDS_SEGMENT = (
    {
        f"test/test_client.py::TestClient::test_{name}"
        for name in [
            "basic_alias",
            "basic_group",
            "basic_identify",
            "basic_page",
            "basic_screen",
            "basic_track",
            "flush",
            "gzip",
            "identify_with_date_object",
            "numeric_user_id",
            "shutdown",
            "stringifies_anonymous_id",
            "stringifies_user_id",
            "success_on_invalid_write_key",
            "synchronous",
        ]
    }
    | {
        "test/test_consumer.py::TestConsumer::test_request",
        "test/test_consumer.py::TestConsumer::test_upload",
        "test/test_request.py::TestRequests::test_should_not_timeout",
        "test/test_request.py::TestRequests::test_should_timeout",
        "test/test_request.py::TestRequests::test_valid_request",
    }
    | {
        f"test/test_module.py::TestModule::test_{name}"
        for name in ("alias", "group", "identify", "page", "screen", "track")
    }
)
"""Tests that POST to api.segment.io (or expect its answers) without a mock in the way."""

KNOWN: dict[str, str] = {}
"""Failures we expect, each with the documented behaviour of ours that it contradicts. None
today: every test passes."""

GUARD = '''
"""Written by tests/compat/upstream.py: no traffic beyond 127.0.0.1."""
import os
import socket

_getaddrinfo = socket.getaddrinfo


def _loopback_only(host, *args, **kwargs):
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise socket.gaierror(f"compat suite: {host} is beyond loopback; refused")
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _loopback_only

if os.environ.get("COMPAT_COLLECTOR_URL"):
    import segment_clone.request

    segment_clone.request.DEFAULT_HOST = os.environ["COMPAT_COLLECTOR_URL"]
'''


def download_wheel(python: str, requirement: str, pattern: str) -> Path:
    """The wheel of ``requirement`` (``NAME==VERSION``) in ``.compat/dist``, downloaded once."""
    dist = SCRATCH / "dist"
    wheels = sorted(dist.glob(pattern))
    if not wheels:
        subprocess.run(
            [python, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(dist), requirement],
            check=True,
        )
        wheels = sorted(dist.glob(pattern))
    return wheels[0]


def fetch_suite(python: str) -> Path:
    """The upstream tests, rewritten for segment_clone, in ``.compat/suite/test``."""
    wheel_path = download_wheel(python, UPSTREAM, "segment_analytics_python-2.4.0-*.whl")
    suite = SCRATCH / "suite"
    tests = suite / "test"
    tests.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel_path) as wheel:
        for name in wheel.namelist():
            if name.startswith("segment/analytics/test/") and name.endswith(".py"):
                text = wheel.read(name).decode()
                text = re.sub(r"\bsegment\.analytics\b", "segment_clone", text)
                (tests / Path(name).name).write_text(text)
    (suite / "conftest.py").write_text(GUARD)
    (suite / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    return suite


def collect(python: str, suite: Path) -> list[str]:
    out = subprocess.run(
        [python, "-m", "pytest", "--collect-only", "-q", "test"],
        cwd=suite,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if "::" in line]


def run_one(python: str, suite: Path, test: str, env: dict[str, str]) -> tuple[str, bool, str]:
    try:
        done = subprocess.run(
            [python, "-m", "pytest", "-q", "-W", "ignore::DeprecationWarning", test],
            cwd=suite,
            capture_output=True,
            text=True,
            timeout=TEST_TIMEOUT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        return test, False, f"timed out after {TEST_TIMEOUT}s"
    lines = [line for line in done.stdout.splitlines() if line.startswith("E ")]
    return test, done.returncode == 0, (lines[-1][2:].strip() if lines else "")


def run_all(
    python: str, suite: Path, tests: list[str], env: dict[str, str]
) -> list[tuple[str, bool, str]]:
    # Many of the tests mostly wait (upload intervals, backoff), so run twice as many as cores.
    with ThreadPoolExecutor(max_workers=2 * (os.cpu_count() or 1)) as pool:
        return list(pool.map(lambda t: run_one(python, suite, t, env), tests))


def against_collector(python: str, suite: Path, tests: list[str]) -> list[tuple[str, bool, str]]:
    """Run ``tests`` with the default host pointed at a local collector process, which answers
    each batch after ``NETWORK_DELAY_MS``."""
    from segment_clone.collector import Collector, Faults, FaultSettings

    faults = Faults(FaultSettings(delay_ms=NETWORK_DELAY_MS))
    with (
        tempfile.TemporaryDirectory() as tmp,
        Collector(Path(tmp) / "events.db", port=0, faults=faults).start() as c,
    ):
        env = {**os.environ, "COMPAT_COLLECTOR_URL": c.url}
        return run_all(python, suite, tests, env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter with segment_clone")
    args = parser.parse_args()
    suite = fetch_suite(args.python)
    every = collect(args.python, suite)
    offline = [t for t in every if t not in NEEDS_SEGMENT]
    results = run_all(args.python, suite, offline, dict(os.environ))
    passed = sum(ok for _, ok, _ in results)
    unexpected = 0
    for test, ok, detail in sorted(results):
        if not ok:
            why = KNOWN.get(test)
            unexpected += why is None
            print(f"FAIL {test}\n     {detail}\n     {why or 'UNEXPECTED'}")
    online = sorted(against_collector(args.python, suite, sorted(NEEDS_SEGMENT & set(every))))
    for test, ok, detail in online:
        if not ok:
            print(f"FAIL (against the collector) {test}\n     {detail}\n     {KNOWN.get(test, '')}")
    total = len(offline)
    print(
        f"\n{len(online)} tests that need Segment's servers, run against a local collector: "
        f"{sum(ok for _, ok, _ in online)}/{len(online)} passed"
    )
    print(f"analytics-python 2.4.0 offline suite: {passed}/{total} passed ({passed / total:.1%})")
    return 0 if passed >= GOAL * total and not unexpected else 1


if __name__ == "__main__":
    sys.exit(main())
