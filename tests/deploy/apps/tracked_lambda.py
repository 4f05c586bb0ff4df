"""AWS Lambda handlers for the Lambda deployment test, run by ``awslambdaric``. ``handler`` is
wrapped in ``flush_after``; ``unflushed`` is the same handler without it."""

from __future__ import annotations

from typing import Any

from tracked_wsgi import record

import segment_clone as analytics


def _track_events(event: dict[str, Any], context: Any) -> dict[str, Any]:
    ids = []
    for n in range(event["events"]):
        ok, message = analytics.track(
            "lambda-user", "Function Invoked", {"n": n, "request": context.aws_request_id}
        )
        assert ok, message
        ids.append(record(message))
    return {"messageIds": ids}


handler = analytics.flush_after(timeout=2.0)(_track_events)
unflushed = _track_events
