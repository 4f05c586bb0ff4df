"""The background lanes' wire: Mixpanel's JSON ingestion API, as its documentation gives it.

A lane posts its batch as one JSON array (``Content-Type: application/json``), joined from the
messages' encoded bytes without decoding them. ``/track``, ``/engage`` and ``/groups`` take the
``verbose=1`` and ``ip=0`` of upstream's form in the query. ``/import`` is gzipped and asks for
``strict=1``, so Mixpanel validates each record and answers a 400 that lists the
``failed_records`` while it keeps the others. The synchronous consumers keep upstream's form
(``transport.request_parts``); only the lanes speak this.
"""

from __future__ import annotations

import zlib
from base64 import b64encode
from typing import Any, NamedTuple

import orjson
import requests

from ..request import GZIP_LEVEL
from .credentials import ServiceAccountCredentials
from .errors import MixpanelAPIError
from .transport import Auth, response_error

QUERY = {"imports": "strict=1"}
"""Per endpoint, the query the lanes add; the others get upstream's form fields."""
FORM_QUERY = "verbose=1&ip=0"
GZIPPED = frozenset({"imports"})
"""Endpoints whose bodies are gzipped: Mixpanel documents ``Content-Encoding: gzip`` for
``/import``. The other bodies are a few KB per batch on a loopback or LAN hop."""


class FailedRecord(NamedTuple):
    """One record a ``strict=1`` import refused: its place in the batch and Mixpanel's reason."""

    position: int
    insert_id: str | None
    field: str | None
    message: str

    def describe(self) -> str:
        where = f"record {self.position}"
        if self.insert_id:
            where += f" ($insert_id {self.insert_id})"
        return f"{where}: {self.field + ': ' if self.field else ''}{self.message}"


def url(base: str, endpoint: str, credentials: ServiceAccountCredentials | None) -> str:
    """``base`` with the lane's query: ``strict=1`` (and ``project_id``) for imports."""
    query = QUERY.get(endpoint, FORM_QUERY)
    if endpoint == "imports" and credentials is not None:
        query += f"&project_id={credentials.project_id}"
    return base + ("&" if "?" in base else "?") + query


def headers(
    endpoint: str, auth: Auth, credentials: ServiceAccountCredentials | None
) -> dict[str, str]:
    """Content type, gzip and Basic auth, as ``transport.request_parts`` decides them.

    A form's ``api_key`` has no place in a JSON body; the secret that comes with it is what
    authenticates, and an ``api_key`` alone is not sent, as upstream 5.x does not."""
    fields = {"Content-Type": "application/json"}
    if endpoint in GZIPPED:
        fields["Content-Encoding"] = "gzip"
    user = None
    if credentials is not None and endpoint == "imports":
        user = f"{credentials.username}:{credentials.secret}"
    elif auth[1] is not None:
        user = f"{auth[1]}:"
    if user is not None:
        fields["Authorization"] = "Basic " + b64encode(user.encode()).decode("ascii")
    return fields


def body(endpoint: str, batch: list[bytes]) -> bytes:
    """The batch as one JSON array of the encoded messages, gzipped where it is due."""
    data = b"[" + b",".join(batch) + b"]"
    if endpoint not in GZIPPED:
        return data
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
    return compressor.compress(data) + compressor.flush()


def failed_records(endpoint: str, response: requests.Response) -> list[FailedRecord]:
    """The records a ``strict=1`` import refused, or ``[]`` when the whole batch was accepted.

    Raises ``MixpanelAPIError`` for an answer that accepted nothing: a non-2xx status without
    ``failed_records`` (retried or not by the shared policy), or a 2xx whose body says no.
    """
    status = response.status_code
    payload = _json(response)
    listed = payload.get("failed_records") if isinstance(payload, dict) else None
    if status == 400 and endpoint == "imports" and isinstance(listed, list) and listed:
        return [_failed(i, record) for i, record in enumerate(listed)]
    if 200 <= status < 300 and _accepted(payload):
        return []
    error = response_error(response)
    message = error if error is not None else f"HTTP {status} {response.reason}"
    raise MixpanelAPIError(status, message, response, endpoint)


def _accepted(payload: Any) -> bool:
    """``verbose=1``'s ``{"status": 1}``, or ``/import``'s ``{"code": 200, "status": "OK"}``."""
    if not isinstance(payload, dict):
        return False
    return payload.get("status") == 1 or payload.get("code") == 200


def _json(response: requests.Response) -> Any:
    """The answer's JSON, by orjson (``Response.json()`` first guesses the text encoding)."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _failed(position: int, record: Any) -> FailedRecord:
    if not isinstance(record, dict):
        return FailedRecord(position, None, None, f"refused: {record!r}")
    index = record.get("index")
    return FailedRecord(
        index if isinstance(index, int) else position,
        _text(record.get("$insert_id", record.get("insert_id"))),
        _text(record.get("field")),
        _text(record.get("message")) or "refused",
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


__all__ = ["FailedRecord", "body", "failed_records", "headers", "url"]
