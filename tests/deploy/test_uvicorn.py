"""uvicorn, alone and with 2 workers, through SIGTERM: a Starlette app in segment_clone's ASGI
middleware loses nothing, though uvicorn re-raises the signal after its graceful shutdown, so
that its processes die by it and no exit hook runs. The middleware flushes at
``lifespan.shutdown``, the one moment uvicorn waits for the application."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from segment_clone.collector import Collector

from .harness import BIN, assert_all_stored, listening_socket, serve

REQUESTS = 4
NO_EXIT_HOOK = pytest.mark.xfail(
    strict=True,
    reason="uvicorn re-raises SIGTERM once it has shut down: the process dies by the signal, "
    "no exit hook runs, and what the app left queued is lost unless the lifespan flushes it",
)


@pytest.mark.parametrize(
    ("app", "workers"),
    [
        ("app", 1),
        ("app", 2),
        pytest.param("unwrapped", 1, marks=NO_EXIT_HOOK),
        ("bare", 1),
    ],
    ids=["middleware", "middleware-2-workers", "no-middleware", "middleware-app-ignores-lifespan"],
)
def test_sigterm_loses_nothing(
    app: str, workers: int, collector: Collector, tmp_path: Path
) -> None:
    with listening_socket() as sock:
        command = [
            str(BIN / "uvicorn"),
            f"--fd={sock.fileno()}",
            f"--workers={workers}",
            f"tracked_asgi:{app}",
        ]
        with serve(command, sock, collector, tmp_path) as served:
            for _ in range(REQUESTS):
                served.get()
            status = served.stop(signal.SIGTERM)
    assert status in (0, -signal.SIGTERM), served.output()
    assert "Application shutdown complete" in served.output()
    assert_all_stored(served, collector, timeout=2, exit_hooks=False)
