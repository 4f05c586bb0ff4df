"""One tracking plan in both shapes the collector reads, and messages that break it each way."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ORDER_FIELDS: dict[str, Any] = {
    "order_id": {"type": "string"},
    "total": {"type": "number"},
    "currency": {"enum": ["EUR", "USD"]},
    "email": {"type": "string", "format": "email"},
}
COMPACT: dict[str, Any] = {
    "events": {
        "Order Completed": {
            "properties": {
                "order_id": "string",
                "total": "number",
                "currency": ["EUR", "USD"],
                "email": {"type": "string", "format": "email"},
            },
            "required": ["order_id", "total"],
            "allow_additional": False,
        },
        "Signed Up": {"properties": {"plan": ["free", "pro"]}},
    },
    "identify": {
        "traits": {"email": {"type": "string", "format": "email"}, "age": "integer"},
        "required": ["email"],
    },
    "group": {"traits": {"name": "string"}, "required": ["name"]},
}


def _whole_message(part: str, fields: dict[str, Any], **rules: Any) -> dict[str, Any]:
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {part: {"type": "object", "properties": fields, **rules}},
    }


SEGMENT: dict[str, Any] = {
    "data": {
        "rules": [
            {
                "key": "Order Completed",
                "type": "TRACK",
                "version": 2,
                "jsonSchema": _whole_message(
                    "properties",
                    ORDER_FIELDS,
                    required=["order_id", "total"],
                    additionalProperties=False,
                ),
            },
            {
                "key": "Order Completed",
                "type": "TRACK",
                "version": 1,
                "jsonSchema": {"required": ["an_old_version_that_must_not_apply"]},
            },
            {
                "key": "Signed Up",
                "type": "TRACK",
                "version": 1,
                "jsonSchema": _whole_message("properties", {"plan": {"enum": ["free", "pro"]}}),
            },
            {
                "key": None,
                "type": "IDENTIFY",
                "version": 1,
                "jsonSchema": _whole_message(
                    "traits",
                    {"email": {"type": "string", "format": "email"}, "age": {"type": "integer"}},
                    required=["email"],
                ),
            },
            {
                "key": None,
                "type": "GROUP",
                "version": 1,
                "jsonSchema": _whole_message(
                    "traits", {"name": {"type": "string"}}, required=["name"]
                ),
            },
        ]
    }
}
SHAPES = {"compact": COMPACT, "segment": SEGMENT}

GOOD_ORDER = {"order_id": "o-1", "total": 49.9, "currency": "EUR", "email": "ada@example.com"}
BROKEN_ORDERS: dict[str, tuple[dict[str, Any], str]] = {
    "required": ({"order_id": "o-1"}, "properties.total"),
    "type": ({**GOOD_ORDER, "order_id": 42}, "properties.order_id"),
    "enum": ({**GOOD_ORDER, "currency": "GBP"}, "properties.currency"),
    "format": ({**GOOD_ORDER, "email": "not an address"}, "properties.email"),
    "additional": ({**GOOD_ORDER, "colour": "red"}, "properties.colour"),
}
"""Properties of an ``Order Completed`` event that break the plan one way each, and the field
named by the violation."""


def write_plan(folder: Path, shape: str = "compact", name: str = "plan.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(SHAPES[shape]))
    return path


def segment_track(event: str, properties: dict[str, Any], message_id: str) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": "ada",
        "event": event,
        "properties": properties,
        "messageId": message_id,
    }


def mixpanel_event(event: str, properties: dict[str, Any], insert_id: str) -> dict[str, Any]:
    library = {"token": "tok", "distinct_id": "ada", "time": 1700000000, "$insert_id": insert_id}
    return {"event": event, "properties": {**library, "mp_lib": "python", **properties}}
