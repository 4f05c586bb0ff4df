"""Where the event APIs hand over a request's messages: the tracking plan, then the store.

Each event API (Segment's, Mixpanel's) only parses and validates its wire format into rows.
The ``Intake`` checks them against the plan (storing the violations with each message, or
refusing the request in block mode), stores them with the request's delivery metadata, and
logs the requests that stored nothing, so that the debugger can count them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import orjson

from .plan import Plan, Violation
from .routing import ErrorBody, Headers, HTTPError, Request, Response, Route
from .store import Delivery, EventStore, Row

log = logging.getLogger("segment_clone.collector")

PLAN_MODES = ("flag", "block")
Parsed = list[tuple[Row, Mapping[str, Any]]]
"""A request's rows, each with the message it was made from."""
Parser = Callable[[Request], Parsed]
MAX_RETRY_DIGITS = 9
"""An ``X-Retry-Count`` longer than this (or not ASCII digits) is not a count: ignored."""
Answer = Callable[[Parsed], Response]
"""The answer to a request whose rows were stored, made from them (Mixpanel's ``strict=1``
counts the records it imported)."""


@dataclass(frozen=True)
class EventAPI:
    """An API that brings events: its ``source`` name, and how its messages meet a plan."""

    source: str
    check: Callable[[Plan, str, Mapping[str, Any]], list[Violation]]
    """The violations of a message (given with its row type)."""


class Intake:
    """The one way into the store for event APIs; ``mode`` is what a violation does: ``flag``
    (store the message with it) or ``block`` (refuse the request)."""

    def __init__(self, store: EventStore, plan: Plan | None = None, mode: str = "flag") -> None:
        if mode not in PLAN_MODES:
            raise ValueError(f"the plan mode is flag or block, got: {mode!r}")
        self.store = store
        self.plan = plan
        self.mode = mode
        self.block = mode == "block"

    def route(
        self,
        path: str,
        api: EventAPI,
        parse: Parser,
        answer: bytes | Answer = b'{"success":true}',
        max_body: int | None = None,
        error: ErrorBody = Response.error,
    ) -> Route:
        """A POST route of ``api`` that stores what ``parse`` makes of a request."""
        return Route(
            "POST",
            path,
            partial(self.accept, api, parse, answer),
            ingest=True,
            public=True,
            max_body=max_body,
            error=error,
            refused=partial(self.refused, api, parse),
        )

    def accept(
        self, api: EventAPI, parse: Parser, answer: bytes | Answer, request: Request
    ) -> Response:
        parsed = parse(request)
        rows = self.checked(api, parsed) if self.plan is not None else [r for r, _ in parsed]
        response = Response(body=answer) if isinstance(answer, bytes) else answer(parsed)
        status = response.status
        delivery = _delivery(api, request.path, request.headers, status, len(rows), request.fault)
        self.store.add(api.source, rows, delivery)
        return response

    def checked(self, api: EventAPI, parsed: Parsed) -> list[Row]:
        """The rows with their violations; in block mode, a 400 listing them if there are any."""
        plan, check = self.plan, api.check
        assert plan is not None
        rows, refusals = [], []
        for i, (row, message) in enumerate(parsed):
            found = check(plan, row.type, message)
            if found:
                listed = [v.as_json() for v in found]
                row = row._replace(violations=orjson.dumps(listed).decode())
                refusals += [{"index": i, "event": row.event or row.type, **v} for v in listed]
            rows.append(row)
        if refusals and self.block:
            first = refusals[0]
            raise HTTPError(
                400,
                "plan_violation",
                f"{len(refusals)} tracking-plan violation(s), first: message {first['index']}"
                f" ({first['event']}): {first['message']}",
                details={"violations": refusals},
            )
        return rows

    def refused(
        self,
        api: EventAPI,
        parse: Parser,
        path: str,
        request: Request | None,
        headers: Headers,
        status: int,
        fault: str | None,
    ) -> None:
        """Log a request that stored nothing; one failed by fault injection is parsed for the
        keys of its messages, so that the retry that stores them can show the fault."""
        keys: list[str] = []
        if fault is not None and request is not None:
            with contextlib.suppress(HTTPError):  # if it cannot be parsed, no key to keep
                keys = [row.dedup_key for row, _ in parse(request)]
        size = len(keys) if keys else None
        try:
            self.store.log_refused(_delivery(api, path, headers, status, size, fault), keys)
        except RuntimeError:
            log.debug("request not logged: the store is closed")


def _delivery(
    api: EventAPI, path: str, headers: Headers, status: int, size: int | None, fault: str | None
) -> Delivery:
    gzip = (headers.get("Content-Encoding") or "").strip().lower() == "gzip"
    return Delivery(
        api.source,
        path,
        gzip,
        status,
        size,
        fault,
        _retry_count(headers.get("X-Retry-Count")),
    )


def _retry_count(header: str | None) -> int | None:
    """The client's ``X-Retry-Count``; None when absent or not a count."""
    if header is None or not header.isascii() or not header.isdigit():
        return None
    return int(header) if len(header) <= MAX_RETRY_DIGITS else None
