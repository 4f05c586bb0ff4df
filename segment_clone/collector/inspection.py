"""Read-side endpoints: ``/api/events``, ``/api/stats``, ``/api/faults`` and the HTML page.

None of these is subject to fault injection, so a test can always see what was stored.
"""

from __future__ import annotations

import html
import time
from typing import Any

import orjson

from .faults import Faults
from .routing import HTTPError, Request, Response, Route
from .store import EventStore, Query

PAGE_EVENTS = 50


def routes(store: EventStore, faults: Faults) -> list[Route]:
    def events(request: Request) -> Response:
        query = query_from_params(request.query)
        total = store.count(Query(query.type, query.user_id, query.event, query.source))
        bodies = ",".join(s.body for s in store.find(query))
        return Response(body=f'{{"total":{total},"events":[{bodies}]}}'.encode())

    def stats(request: Request) -> Response:
        return Response.json({**store.stats(), "faults": faults.as_json()})

    def get_faults(request: Request) -> Response:
        return Response.json(faults.as_json())

    def set_faults(request: Request) -> Response:
        changes = request.json()
        if not isinstance(changes, dict):
            raise HTTPError(400, "invalid_request", "send a JSON object of fault settings")
        try:
            faults.update(changes)
        except ValueError as e:
            raise HTTPError(400, "invalid_request", str(e)) from None
        return Response.json(faults.as_json())

    def page(request: Request) -> Response:
        return Response(body=render_page(store).encode(), content_type="text/html; charset=utf-8")

    return [
        Route("GET", "/api/events", events),
        Route("GET", "/api/stats", stats),
        Route("GET", "/api/faults", get_faults),
        Route("POST", "/api/faults", set_faults),
        Route("GET", "/", page),
    ]


def query_from_params(params: dict[str, str]) -> Query:
    """A ``Query`` from URL parameters; blank parameters are ignored."""
    given = {k: v for k, v in params.items() if v != ""}
    limit = given.get("limit")
    if limit is not None and not (limit.isdigit() and int(limit) > 0):
        raise HTTPError(400, "invalid_request", f"limit must be a positive integer, got {limit!r}")
    return Query(
        type=given.get("type"),
        user_id=given.get("user_id"),
        event=given.get("event"),
        source=given.get("source"),
        limit=None if limit is None else int(limit),
    )


def render_page(store: EventStore) -> str:
    """A small self-refreshing page: counts, then the most recent events, newest first."""
    stats = store.stats()
    rows = []
    for stored in reversed(store.find(Query(limit=PAGE_EVENTS))):
        msg: dict[str, Any] = orjson.loads(stored.body)
        props = msg.get("properties")
        who = (
            msg.get("userId")
            or msg.get("anonymousId")
            or msg.get("$distinct_id")  # Mixpanel profile updates
            or (props.get("distinct_id") if isinstance(props, dict) else None)  # Mixpanel events
            or msg.get("$group_id")
            or ""
        )
        what = msg.get("event") or msg.get("name") or msg.get("groupId") or ""
        cells = (
            time.strftime("%H:%M:%S", time.localtime(stored.received_at)),
            stored.source,
            stored.type,
            str(who),
            str(what),
            orjson.dumps(msg.get("properties") or msg.get("traits") or {}).decode()[:200],
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    counts = ", ".join(
        f"{html.escape(source)}: {s['total']} ({s['duplicates']} duplicates)"
        for source, s in stats["sources"].items()
    )
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>segment-clone collector</title>
<style>body{{font:14px sans-serif;margin:2em}}td,th{{padding:2px 8px;text-align:left}}
tr:nth-child(even){{background:#f4f4f4}}</style></head>
<body><h1>segment-clone collector</h1>
<p>{stats["total"]} events stored{": " + counts if counts else ""}.
JSON: <a href="/api/events?limit=100">/api/events</a>, <a href="/api/stats">/api/stats</a></p>
<table><tr><th>received</th><th>source</th><th>type</th><th>user</th><th>event / name</th>
<th>properties / traits</th></tr>
{"".join(rows)}
</table></body></html>
"""
