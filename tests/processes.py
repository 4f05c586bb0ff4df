"""Start the collector as a real subprocess, the way users and ``make demo`` run it."""

from __future__ import annotations

import signal
import subprocess
import sys
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
