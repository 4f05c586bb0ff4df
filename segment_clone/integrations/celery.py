"""Celery: a task runs inside the scope it was sent from, and each worker process flushes,
bounded, when it stops.

``instrument(app)`` once, in the module that both the senders and the workers import. The
active scope travels in a message header (``segment_clone_scope``, JSON); a task sent from no
scope carries nothing and runs in none. Under the prefork pool each child process is forked
from the worker and ends without the interpreter's exit hooks, so the flush is hooked to
``worker_process_shutdown`` (and ``worker_shutdown`` for the solo and thread pools).
"""

from __future__ import annotations

import logging
from contextvars import Token
from typing import TYPE_CHECKING, Any

from celery import signals

from ..encoding import decode_message, encode_message
from ..scopes import Frame, Scope, current_frame, enter, leave
from ..serverless import client_or_default, flush_quietly

if TYPE_CHECKING:
    from ..client import Client

HEADER = "segment_clone_scope"
log = logging.getLogger("segment")
_FIELDS = ("user_id", "anonymous_id", "context", "properties", "integrations")


def instrument(app: Any, client: Client | None = None) -> Any:
    """Carry scopes from senders to ``app``'s tasks, and flush ``client`` (default: the
    module's default client) when a worker process stops. Returns ``app``; idempotent."""
    tokens: dict[str, Token[Frame | None]] = {}

    def send_scope(headers: dict[str, Any] | None = None, **_: Any) -> None:
        frame = current_frame()
        if frame is None or headers is None:
            return
        try:
            headers[HEADER] = scope_header(frame)
        except Exception:  # the task is sent all the same, without the scope
            log.warning("could not attach the scope to a task", exc_info=True)

    def enter_scope(task_id: str | None = None, task: Any = None, **_: Any) -> None:
        if getattr(task, "app", None) is not app:
            return  # another instrumented app's task: its own handler enters the scope
        payload = _header_of(task)
        if payload is None or task_id is None:
            return  # eager or scope-less: the task runs in its caller's context as it is
        try:
            frame = Scope(**{k: payload.get(k) for k in _FIELDS}, fresh=True).frame()
        except Exception:
            log.warning("ignored a malformed %s header", HEADER, exc_info=True)
            return
        tokens[task_id] = enter(frame)

    def leave_scope(task_id: str | None = None, **_: Any) -> None:
        token = tokens.pop(task_id, None) if task_id is not None else None
        if token is not None:
            leave(token)

    def flush(**_: Any) -> None:
        target = client_or_default(client)
        if target is not None:
            flush_quietly(target, target.shutdown_timeout)

    uid = f"segment_clone:{id(app)}"
    signals.before_task_publish.connect(send_scope, weak=False, dispatch_uid=f"{uid}:publish")
    signals.task_prerun.connect(enter_scope, weak=False, dispatch_uid=f"{uid}:prerun")
    signals.task_postrun.connect(leave_scope, weak=False, dispatch_uid=f"{uid}:postrun")
    signals.worker_process_shutdown.connect(flush, weak=False, dispatch_uid=f"{uid}:child")
    signals.worker_shutdown.connect(flush, weak=False, dispatch_uid=f"{uid}:worker")
    return app


def scope_header(frame: Frame) -> dict[str, Any]:
    """The frame as JSON-ready data: what cannot be JSON is dropped (and logged)."""
    frame.resolve()
    values = {name: getattr(frame, name) for name in _FIELDS}
    data, _ = encode_message({k: v for k, v in values.items() if v})
    header: dict[str, Any] = decode_message(data)
    return header


def _header_of(task: Any) -> dict[str, Any] | None:
    request = getattr(task, "request", None)
    payload = getattr(request, HEADER, None)
    if payload is None:
        payload = (getattr(request, "headers", None) or {}).get(HEADER)
    return payload if isinstance(payload, dict) else None
