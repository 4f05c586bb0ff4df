"""Run a Python snippet in a real subprocess (the SDK under test lives in that process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run_script(body: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``body`` (dedented) with ``args`` as ``sys.argv[1:]``; capture text output."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_script(body: str, *args: str) -> subprocess.Popen[str]:
    """Start ``body`` in the background with stdout piped, for tests that kill it."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(body), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
