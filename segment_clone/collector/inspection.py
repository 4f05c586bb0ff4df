"""Read-side endpoints (``/api/*``) and the debugger page (``/``).

None of these is subject to fault injection, so a test can always see what was stored.
Filters are the same everywhere (``query_from_params``), and ``wait=N&timeout=S`` on
``/api/events`` and ``/api/entries`` holds the answer until N messages match: tests need no
polling loop, and ``segment-clone events --follow`` none either.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Protocol

import orjson

from . import page
from .faults import Faults
from .live import Changes
from .pretty import sdk_call
from .routing import HTTPError, Request, Response, Route
from .store import Entry, EventStore, Query, iso_time

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
DEFAULT_WAIT_TIMEOUT = 10.0
MAX_WAIT_TIMEOUT = 300.0
SOURCES = ("segment", "mixpanel")
MAX_INTEGER = 2**62
"""The largest integer parameter (``limit``, ``id``, ``after``...): SQLite's are 64-bit."""


class Inspected(Protocol):
    """What the endpoints read and reset (a ``Collector``)."""

    store: EventStore
    faults: Faults
    changes: Changes

    def stats(self) -> dict[str, Any]: ...

    def reset(self) -> None: ...


def routes(collector: Inspected) -> list[Route]:
    store = collector.store

    def wait(request: Request, matching: Query) -> None:
        """Hold the answer while fewer than ``wait`` messages match, up to ``timeout``, or
        until the client goes."""
        params = request.query
        wanted = _number(params, "wait", int, 0, None)
        timeout = _number(params, "timeout", float, 0, MAX_WAIT_TIMEOUT)
        if wanted:
            ready = lambda: store.count(matching) >= wanted  # noqa: E731
            timeout = DEFAULT_WAIT_TIMEOUT if timeout is None else timeout
            collector.changes.wait(ready, timeout, request.gone)

    def events(request: Request) -> Response:
        query = query_from_params(request.query)
        matching = replace(query, limit=None)
        wait(request, matching)
        total = store.count(matching)
        bodies = ",".join(s.body for s in store.find(query))
        return Response(body=f'{{"total":{total},"events":[{bodies}]}}'.encode())

    def entries(request: Request) -> Response:
        params = request.query
        limit = _number(params, "limit", int, 1, MAX_PAGE_SIZE) or PAGE_SIZE
        query = replace(query_from_params(params), limit=None)
        order = params.get("order") or "desc"
        if order not in ("asc", "desc"):
            raise _bad(f"order must be asc or desc, got {order!r}")
        oldest_first = order == "asc"
        wait(request, query)
        listed = store.entries(query, limit, oldest_first)
        return Response.json(
            {
                "total": store.count(replace(query, after=None, before=None)),
                "count": store.count(query),
                "entries": [entry_json(e) for e in listed],
            }
        )

    def entry(request: Request) -> Response:
        id_ = _number(request.query, "id", int, 1, None)
        found = None if id_ is None else store.entry(id_)
        if found is None:
            raise HTTPError(404, "not_found", f"no event with id {request.query.get('id')!r}")
        stored, delivery = found
        message = orjson.loads(stored.body)
        return Response.json(
            {
                **entry_json(stored),
                "pretty": sdk_call(stored.source, stored.type, message),
                "delivery": delivery,
                "links": [link_json(e) for e in store.linked(stored)],
            }
        )

    def violations(request: Request) -> Response:
        groups = store.violation_groups(query_from_params(request.query))
        return Response.json({"total": sum(g["count"] for g in groups), "groups": groups})

    def stats(request: Request) -> Response:
        return Response.json(collector.stats())

    def get_faults(request: Request) -> Response:
        return Response.json(collector.faults.as_json())

    def set_faults(request: Request) -> Response:
        changes = request.json()
        if not isinstance(changes, dict):
            raise HTTPError(400, "invalid_request", "send a JSON object of fault settings")
        try:
            collector.faults.update(changes)
        except ValueError as e:
            raise HTTPError(400, "invalid_request", str(e)) from None
        return Response.json(collector.faults.as_json())

    def reset(request: Request) -> Response:
        collector.reset()
        return Response()

    def stream(request: Request) -> Response:
        return Response(
            content_type="text/event-stream",
            headers={"Cache-Control": "no-store"},
            stream=collector.changes.stream(),
        )

    return [
        Route("GET", "/api/events", events),
        Route("GET", "/api/entries", entries),
        Route("GET", "/api/entry", entry),
        Route("GET", "/api/violations", violations),
        Route("GET", "/api/stats", stats),
        Route("GET", "/api/faults", get_faults),
        Route("POST", "/api/faults", set_faults),
        Route("POST", "/api/reset", reset),
        Route("GET", "/api/stream", stream),
        Route("GET", "/", lambda request: page.response()),
    ]


def query_from_params(params: dict[str, str]) -> Query:
    """A ``Query`` from URL parameters; blank parameters are ignored, bad ones are a 400."""
    given = {k: v for k, v in params.items() if v != ""}
    source = given.get("source")
    if source is not None and source not in SOURCES:
        raise _bad(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    valid = given.get("valid")
    if valid is not None and valid not in ("true", "false"):
        raise _bad(f"valid must be true or false, got {valid!r}")
    return Query(
        type=given.get("type"),
        user_id=given.get("user_id"),
        event=given.get("event"),
        source=source,
        limit=_number(given, "limit", int, 1, None),
        q=given.get("q"),
        user=given.get("user"),
        valid=None if valid is None else valid == "true",
        after=_number(given, "after", int, 0, None),
        before=_number(given, "before", int, 1, None),
    )


def entry_json(entry: Entry) -> dict[str, Any]:
    """A stored message for the debugger: metadata, violations and the JSON as stored."""
    return {
        "id": entry.id,
        "source": entry.source,
        "type": entry.type,
        "received_at": iso_time(entry.received_at),
        "event": entry.event,
        "user": entry.user_id or entry.anonymous_id,
        "valid": entry.violations is None,
        "violations": orjson.loads(entry.violations or "[]"),
        "raw": entry.body,
    }


def link_json(entry: Entry) -> dict[str, Any]:
    """An entry of the other side, as the debugger links to it."""
    return {"id": entry.id, "source": entry.source, "type": entry.type, "event": entry.event}


def _number(params: dict[str, str], name: str, kind: type, low: float, high: float | None) -> Any:
    """Parameter ``name`` as an int or float within ``[low, high]``, None if absent or blank."""
    text = params.get(name, "")
    if high is None and kind is int:
        high = MAX_INTEGER
    if text == "":
        return None
    try:
        value = kind(text)
    except (ValueError, OverflowError):
        value = None
    if (
        value is None
        or not math.isfinite(value)
        or value < low
        or (high is not None and value > high)
    ):
        limits = f"at least {low:g}" + ("" if high is None else f" and at most {high:g}")
        raise _bad(f"{name} must be a number {limits}, got {text!r}")
    return value


def _bad(message: str) -> HTTPError:
    return HTTPError(400, "invalid_request", message)
