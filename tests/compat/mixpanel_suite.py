"""``make compat``: mixpanel-python's own ``test_mixpanel.py``, run against segment_clone.mixpanel.

The suite is in no mixpanel release on PyPI (checked on 2026-12-03: none of the 31 sdists, 0.1
to 5.4.1, nor the 4.10.1 and 5.4.1 wheels holds it), so it is downloaded once from the repository at
``COMMIT`` (the last change to ``test_mixpanel.py`` in mixpanel-python's history as we know it:
service-account auth, released in 5.2.0) into ``.compat/`` (a scratch folder, never committed),
or read from ``--suite PATH``. ``import mixpanel`` and the ``"mixpanel.…"`` names it patches are
pointed at ``segment_clone.mixpanel``, and it runs in one pytest process: it mocks HTTP with
``responses`` (in the ``dev`` extra), so nothing leaves the machine, and a guard refuses any
address beyond 127.0.0.1 all the same.

Every test must pass: the synchronous ``Consumer`` and ``BufferedConsumer`` are drop-ins.
Prints each failure, then ``P/T passed``; exits 1 on any failure. A machine that cannot reach
GitHub (and has no ``--suite``) prints ``SKIPPED`` and why, and exits 0: nothing of ours was
tested, and nothing of ours failed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import urllib.request
from pathlib import Path

from mixpanel_flags import run
from upstream import GUARD, SCRATCH

COMMIT = "2fd717c717ed461df716b9450879d66a2cd1f860"
SOURCE = f"https://raw.githubusercontent.com/mixpanel/mixpanel-python/{COMMIT}/test_mixpanel.py"

_REWRITES = (
    (re.compile(r"^import mixpanel$", re.M), "import segment_clone.mixpanel as mixpanel"),
    (re.compile(r"([\"'])mixpanel\."), r"\1segment_clone.mixpanel."),
)


def rewrite(text: str) -> str:
    """Upstream's test module, importing segment_clone's facade instead of ``mixpanel``."""
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return text


def fetch_suite(source: Path | None) -> Path:
    """The rewritten suite in ``.compat/mixpanel-suite/``, from ``source`` or downloaded.
    Raises ``OSError`` (``URLError``) when it must be downloaded and cannot be."""
    suite = SCRATCH / "mixpanel-suite"
    suite.mkdir(parents=True, exist_ok=True)
    original = SCRATCH / f"test_mixpanel-{COMMIT[:12]}.py"
    if source is not None:
        shutil.copyfile(source, original)
    elif not original.exists():
        with urllib.request.urlopen(SOURCE, timeout=60) as answer:
            original.write_bytes(answer.read())
    (suite / "test_mixpanel.py").write_text(rewrite(original.read_text()))
    (suite / "conftest.py").write_text(GUARD)
    (suite / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    return suite


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--python", default=sys.executable, help="interpreter with segment_clone")
    parser.add_argument("--suite", type=Path, help="a local copy of upstream's test_mixpanel.py")
    args = parser.parse_args()
    try:
        suite = fetch_suite(args.suite)
    except OSError as e:
        print(f"mixpanel-python test_mixpanel.py: SKIPPED, cannot download {SOURCE}: {e}")
        return 0
    results = run(args.python, suite)
    passed = sum(ok for _, ok, _ in results)
    for test, ok, detail in sorted(results):
        if not ok:
            print(f"FAIL {test}\n     {detail}")
    print(f"mixpanel-python test_mixpanel.py: {passed}/{len(results)} passed")
    return 0 if results and passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
