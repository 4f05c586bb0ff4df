"""A local tracking-API server with an embedded SQLite store, for demos and tests.

Run it with ``segment-clone collector`` (or ``python -m segment_clone.collector``), or embed it::

    with Collector("events.db", port=0, plan=load_plan("plan.json")).start() as collector:
        ...  # point a Client at collector.url; the debugger is at collector.url + "/"
        collector.wait_for(3, type="track")
        collector.assert_no_violations()
"""

from __future__ import annotations

from .faults import Faults, FaultSettings
from .limits import MAX_BODY_BYTES, MAX_MESSAGE_BYTES
from .oauth import OAuthSettings
from .plan import Plan, PlanError, Violation, load_plan, parse_plan
from .routing import HTTPError, Request, Response, Route
from .server import DEFAULT_DB, DEFAULT_HOST, DEFAULT_PORT, Collector
from .store import EventStore, Query

__all__ = [
    "DEFAULT_DB",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "MAX_BODY_BYTES",
    "MAX_MESSAGE_BYTES",
    "Collector",
    "EventStore",
    "FaultSettings",
    "Faults",
    "HTTPError",
    "OAuthSettings",
    "Plan",
    "PlanError",
    "Query",
    "Request",
    "Response",
    "Route",
    "Violation",
    "load_plan",
    "parse_plan",
]
