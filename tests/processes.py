"""Real subprocesses for tests: snippets that run the SDK, and the collector as users run it."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

SCRIPT = str(Path(sys.executable).with_name("segment-clone"))
MODULE = [sys.executable, "-m", "segment_clone.collector"]


class Running:
    def __init__(self, proc: subprocess.Popen[str], first_line: str) -> None:
        self.proc = proc
        self.first_line = first_line
        self.url = first_line.removeprefix("listening on ")

    def stop(self, signum: int = signal.SIGTERM) -> tuple[int, str, str]:
        """Signal the collector and return its exit status and remaining output."""
        self.proc.send_signal(signum)
        out, err = self.proc.communicate(timeout=10)
        return self.proc.returncode, out, err


@contextmanager
def collector_process(
    *args: str, command: Sequence[str] = (SCRIPT, "collector"), cwd: Path | None = None
) -> Iterator[Running]:
    proc = subprocess.Popen(
        [*command, "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().rstrip("\n")
        assert line.startswith("listening on http://127.0.0.1:"), (line, proc.stderr)
        yield Running(proc, line)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def run_script(body: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``body`` (dedented) with ``args`` as ``sys.argv[1:]``; capture text output."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(body), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_file(path: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run a Python file (an example, a benchmark) as users do; capture text output."""
    return subprocess.run(
        [sys.executable, str(path), *args], capture_output=True, text=True, timeout=timeout
    )


def start_script(body: str, *args: str) -> subprocess.Popen[str]:
    """Start ``body`` in the background with stdout piped, for tests that kill it."""
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(body), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
