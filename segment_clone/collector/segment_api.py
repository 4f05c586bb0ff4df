"""The Segment tracking API: ``POST /v1/batch`` and the single-message ``/v1/<type>`` routes.

A request is validated completely before anything is stored, so a request with one bad message
stores nothing and the client can fix it and send again. Storing (and the tracking plan) is the
``Intake``'s job.
"""

from __future__ import annotations

import uuid
from functools import partial
from typing import Any

import orjson

from .auth import WriteKeyAuth
from .intake import EventAPI, Intake, Parsed
from .limits import MAX_MESSAGE_BYTES, encoded
from .links import link_key
from .routing import HTTPError, Request, Route
from .store import Row
from .subjects import segment_violations

SOURCE = "segment"
TYPES = ("track", "identify", "page", "screen", "group", "alias")
EVENTS = EventAPI(SOURCE, segment_violations)


def routes(intake: Intake, auth: WriteKeyAuth) -> list[Route]:
    api = SegmentAPI(auth)
    singles = [intake.route(f"/v1/{t}", EVENTS, partial(api.single, t)) for t in TYPES]
    return [intake.route("/v1/batch", EVENTS, api.batch), *singles]


class SegmentAPI:
    def __init__(self, auth: WriteKeyAuth) -> None:
        self.auth = auth

    def batch(self, request: Request) -> Parsed:
        body = self._authorized_body(request)
        messages = body.get("batch")
        if not isinstance(messages, list):
            raise _invalid("the body needs a 'batch' list of messages")
        return [(to_row(m, f"batch[{i}]"), m) for i, m in enumerate(messages)]

    def single(self, type_: str, request: Request) -> Parsed:
        message = self._authorized_body(request)
        message.pop("writeKey", None)  # a credential, not part of the message
        if message.setdefault("type", type_) != type_:
            raise _invalid(f"/v1/{type_} received a message of type {message['type']!r}")
        return [(to_row(message, "message"), message)]

    def _authorized_body(self, request: Request) -> dict[str, Any]:
        """The JSON object body, after checking credentials (header first, then the body)."""
        if request.headers.get("Authorization"):
            self.auth.check(request.headers)
        body = request.json()
        if not isinstance(body, dict):
            raise _invalid("the body must be a JSON object")
        if not request.headers.get("Authorization"):
            self.auth.check(request.headers, body.get("writeKey"))
        return body


def to_row(message: Any, where: str) -> Row:
    """Validate one message and turn it into a store row, or raise 400/413 naming ``where``."""
    if not isinstance(message, dict):
        raise _invalid(f"{where} is not a JSON object")
    type_ = message.get("type")
    if not type_:
        raise _invalid(f"{where} has no 'type'")
    if type_ not in TYPES:
        raise _invalid(f"{where} has an unknown type {type_!r}")
    user_id = string_id(message.get("userId"))
    if user_id is None and string_id(message.get("anonymousId")) is None:
        raise _invalid(f"{where} needs a 'userId' or an 'anonymousId'")
    body = encoded(message, where)
    if len(body) > MAX_MESSAGE_BYTES:
        raise HTTPError(
            413, "payload_too_large", f"{where} is {len(body)} bytes, over {MAX_MESSAGE_BYTES}"
        )
    message_id = message.get("messageId")
    # as JSON, so that 12345 and "12345" are two messages, as they are two values
    fresh = message_id in (None, "")
    dedup_key = uuid.uuid4().hex if fresh else orjson.dumps(message_id).decode()
    event = message.get("event")
    return Row(
        type_,
        dedup_key,
        user_id,
        event if isinstance(event, str) else None,
        body.decode(),
        string_id(message.get("anonymousId")),
        link_key=link_key(SOURCE, message),
    )


def string_id(value: Any) -> str | None:
    """A usable id as a string: a non-empty string or a number; otherwise None."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return None


def _invalid(message: str) -> HTTPError:
    return HTTPError(400, "invalid_request", message)
