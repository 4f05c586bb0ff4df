"""Segment messages delivered to both of a collector's faces, as a client with a Segment and a
Mixpanel destination delivers them: the batch to ``/v1/batch``, its Mixpanel records (made by
the SDK's own mapping) to the Mixpanel endpoint each one names."""

from __future__ import annotations

import json
from typing import Any

from segment_clone.collector import Collector
from segment_clone.destinations import MappingSettings, to_mixpanel

from ..api import post

TOKEN = "tok"
WHEN = "2026-12-03T05:00:00.123+00:00"


def message(type_: str, message_id: str, **fields: Any) -> dict[str, Any]:
    """A Segment message as the SDK builds it, for user ``ada`` (anonymous ``anon-1``)."""
    base = {
        "type": type_,
        "messageId": message_id,
        "timestamp": WHEN,
        "userId": "ada",
        "anonymousId": "anon-1",
    }
    return {**base, **fields}


def deliver_both(collector: Collector, *messages: dict[str, Any]) -> None:
    """The messages to the Segment face, then their Mixpanel records, each endpoint's in one
    request (``/import`` with ``strict=1``); every request must be accepted."""
    assert post(collector.url, "/v1/batch", {"batch": list(messages)}).status == 200
    by_endpoint: dict[str, list[dict[str, Any]]] = {}
    for record in (r for m in messages for r in to_mixpanel(m, MappingSettings(TOKEN))):
        by_endpoint.setdefault(record.endpoint, []).append(record.body)
    for endpoint, bodies in by_endpoint.items():
        deliver_mixpanel(collector, endpoint, *bodies)


def deliver_mixpanel(collector: Collector, endpoint: str, *records: dict[str, Any]) -> None:
    """Records to one Mixpanel endpoint of the collector, as JSON; they must be accepted."""
    path = "/import?strict=1" if endpoint == "import" else f"/{endpoint}"
    reply = post(collector.url, path, json.dumps(list(records)).encode())
    assert reply.status == 200, reply.body
