"""gunicorn, with each worker class and with and without ``--preload``: events pending in the
old workers when a SIGHUP reload replaces them, and in the new ones when SIGTERM stops the
server, are all delivered, each once. The app sends nothing on its own before it stops, so
every event here is delivered by a worker's (or, under ``--preload``, the master's) exit."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from segment_clone.collector import Collector

from .harness import BIN, assert_all_stored, listening_socket, serve

REQUESTS = 3
"""Requests per generation of workers: enough to reach both workers, few for CI's budget."""
GRACEFUL_TIMEOUT = 3
"""Seconds gunicorn gives a stopping worker before it kills it (30 by default), so that a worker
that hangs at exit fails the test in seconds; a healthy one exits in milliseconds."""


# Not strict: whether gunicorn kills the worker inside its 5 s join depends on timing, and one
# run at a load average of 20 saw the worker exit in time (XPASS). A known SDK finding.
LATE_GEVENT_PATCH = pytest.mark.xfail(
    strict=False,
    reason="segment_clone imported before gevent's monkey-patching (gunicorn's gevent worker "
    "patches after the fork, too late for --preload): each worker delivers everything, but its "
    "exit hook's join() of the consumer threads then waits out shutdown_timeout (5 s), past "
    "the graceful timeout of 3 s set here, so gunicorn kills it. gevent and gunicorn ask for "
    "patching before the app loads, as gevent-preload-patched-first does.",
)


@pytest.mark.parametrize(
    ("worker_class", "options"),
    [
        ("sync", []),
        ("sync", ["--preload"]),
        ("gthread", ["--threads=2"]),
        ("gthread", ["--threads=2", "--preload"]),
        ("gevent", []),
        ("gevent", ["--preload", "--config=python:gevent_first"]),
        pytest.param("gevent", ["--preload"], marks=LATE_GEVENT_PATCH),
    ],
    ids=[
        "sync",
        "sync-preload",
        "gthread",
        "gthread-preload",
        "gevent",
        "gevent-preload-patched-first",
        "gevent-preload-patched-late",
    ],
)
def test_sighup_reload_then_sigterm_loses_nothing(
    worker_class: str, options: list[str], collector: Collector, tmp_path: Path
) -> None:
    with listening_socket() as sock:
        command = [
            str(BIN / "gunicorn"),
            f"--bind=fd://{sock.fileno()}",
            "--workers=2",
            f"--worker-class={worker_class}",
            f"--graceful-timeout={GRACEFUL_TIMEOUT}",
            "--no-control-socket",  # gunicorn 24+ binds one in $HOME: parallel runs would clash
            *options,
            "tracked_wsgi:app",
        ]
        with serve(command, sock, collector, tmp_path) as served:
            before = [served.get()["messageId"] for _ in range(REQUESTS)]
            served.proc.send_signal(signal.SIGHUP)
            # The old workers stop gracefully: what they held arrives now, not at SIGTERM.
            reloaded = collector.wait_for(REQUESTS, event="Page Served", timeout=15)
            assert sorted(m["messageId"] for m in reloaded) == sorted(before)
            after = [served.get()["messageId"] for _ in range(REQUESTS)]
            assert served.stop() == 0, served.output()
    assert set(before + after) <= set(served.accepted_ids())
    assert_all_stored(served, collector)
