"""The WSGI app the deployment tests serve: each request to ``/track`` tracks one event.

Every messageId that ``track()`` accepted is appended, with the pid that accepted it, to the
file ``$DEPLOY_ACCEPTED``, so the test knows what is owed without trusting any reply. One event
is tracked when the module is imported: under ``--preload`` that is the server's master, before
it forks its workers. Each process appends its pid to ``$DEPLOY_EXITED`` when its exit hooks
are done: registered before segment_clone is imported, and so before any hook of the SDK, the
hook runs after them (``atexit`` runs the last registered first), so a process killed while
the SDK was still stopping never writes it.
"""

from __future__ import annotations

import atexit
import json
import os
from collections.abc import Iterable
from typing import Any, Callable


def _append(variable: str, line: str) -> None:
    """One ``O_APPEND`` write per line: lines from concurrent processes never interleave."""
    fd = os.open(os.environ[variable], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{line}\n".encode())
    finally:
        os.close(fd)


atexit.register(lambda: _append("DEPLOY_EXITED", str(os.getpid())))

import segment_clone as analytics  # noqa: E402 (after the exit hook above, on purpose)

analytics.write_key = "deploy-test"
analytics.host = os.environ["SEGMENT_HOST"]
analytics.upload_interval = 3600.0  # nothing leaves on its own: only the shutdown delivers


def record(message: dict[str, Any]) -> str:
    """Record that this process accepted ``message``; its messageId."""
    _append("DEPLOY_ACCEPTED", f"{os.getpid()} {message['messageId']}")
    return str(message["messageId"])


def track(event: str) -> str:
    """Track ``event`` from this process; record and return its messageId."""
    ok, message = analytics.track("deploy-user", event, {"pid": os.getpid()})
    assert ok, message
    return record(message)


track("App Loaded")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    body = json.dumps({"messageId": track("Page Served"), "pid": os.getpid()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
