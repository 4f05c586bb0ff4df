"""``examples/asgi_app.py`` under uvicorn, as a real process, against the local collector: every
event a handler tracked is stored, scrubbed, and delivered by the lifespan's ``ashutdown()``."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import segment_clone
from segment_clone.collector import Collector

from ..api import post

EXAMPLES = Path(segment_clone.__file__).resolve().parent.parent / "examples"
RUNNING = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:\d+)")


@contextmanager
def uvicorn(app: str, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """Serve ``app`` from the examples on a free port; yield the process and its base URL."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(EXAMPLES), app, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # uvicorn logs to stderr; it names the port it bound
            if match := RUNNING.search(line):
                break
        else:
            raise AssertionError(f"uvicorn did not start: {proc.communicate(timeout=10)}")
        yield proc, match.group(1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)


def test_every_tracked_event_is_stored_once_the_app_stops(collector: Collector) -> None:
    with uvicorn("asgi_app:app", {"SEGMENT_HOST": collector.url}) as (proc, url):
        message_ids: list[str] = []
        for i in range(20):
            reply = post(url, "/signup", {"email": f"user-{i}@example.com", "plan": "pro"})
            assert reply.status == 200, reply
            assert reply.json()["tracked"] is True
            message_ids += reply.json()["message_ids"]
        proc.send_signal(signal.SIGTERM)  # what a process manager does: a graceful stop
        out, err = proc.communicate(timeout=30)
    # Recent uvicorn re-raises the signal once the lifespan is done, so no exit hook runs:
    # what was pending had to be delivered by the lifespan's ashutdown().
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err
    assert "analytics: delivered 40, pending 0" in out
    stored = collector.events()
    assert sorted(m["messageId"] for m in stored) == sorted(message_ids)
    assert {m["type"] for m in stored} == {"identify", "track"}
    for message in stored:
        values = message.get("traits") or message["properties"]
        assert values["plan"] == "pro" and "email" not in values  # scrubbed by before_send
