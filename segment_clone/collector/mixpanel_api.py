"""Mixpanel's ingestion API: ``POST /track``, ``/engage``, ``/groups`` and ``/import``.

The ``mixpanel`` library (and ``segment_clone.mixpanel``) posts a form whose ``data`` field holds
one JSON record or a list of them, with ``verbose=1`` and ``ip=0``. A JSON body
(``Content-Type: application/json``) is accepted too, and either may be gzip-compressed. The
answer is always the ``verbose=1`` JSON, ``{"status": 1, "error": null}``, or
``{"status": 0, "error": "..."}`` with a 4xx status; injected faults are worded the same way.
As on the Segment routes, a request is validated whole before anything of it is stored, and
storing it is the ``Intake``'s job.

``/import?strict=1`` answers as Mixpanel does: each record is validated on its own, the valid
ones are stored, and the answer counts them (``{"code": 200, "num_records_imported": N,
"status": "OK"}``), or is a 400 whose ``failed_records`` list the others, each with its
``index``, ``$insert_id``, ``field`` and ``message``.
"""

from __future__ import annotations

import hmac
import uuid
from functools import partial
from typing import Any, Callable
from urllib.parse import parse_qs

import orjson

from .auth import basic_credentials
from .intake import EventAPI, Intake, Parsed
from .limits import encoded
from .links import mixpanel_link
from .routing import Headers, HTTPError, Request, Response, Route
from .segment_api import string_id
from .store import Row
from .subjects import mixpanel_violations

SOURCE = "mixpanel"
MAX_BODY_BYTES = 10 * 1024 * 1024
"""Per request, after gzip: Mixpanel's documented limit for ``/import`` and ``/track``."""
MAX_RECORDS = 2000
MAX_CONTAINERS = 200_000
"""Objects and arrays a body may hold (counted by its brackets before it is parsed): 10 MB of
``[[],[],...]`` would otherwise inflate to some 300 MB of lists while parsing, and the record
count could only be checked after. 2000 records of up to 100 objects each fit."""
"""Events or profile updates per request, as Mixpanel documents for every endpoint."""
MAX_RECORD_BYTES = 1024 * 1024
"""Per event or update (Mixpanel: "under 1 MB")."""
MAX_FORM_FIELDS = 20
OPERATIONS = ("$set", "$set_once", "$add", "$append", "$union", "$remove", "$unset", "$delete")
"""Profile and group update operations; the first one found is stored as the row's ``event``."""
OK = b'{"status":1,"error":null}'
EVENTS = EventAPI(SOURCE, mixpanel_violations)


def routes(intake: Intake, secret: ProjectSecret | None = None) -> list[Route]:
    """The four endpoints; ``/import`` is guarded by ``secret`` (by default open to anyone).

    With a secret, ``/import``'s events are deduplicated apart from ``/track``'s: otherwise an
    unauthenticated ``/track`` could pre-empt an import by sending its keys first."""
    secret = secret or ProjectSecret(None)
    api = MixpanelAPI(secret)
    rows: dict[str, Callable[[Any, str], Row]] = {
        "track": partial(event_row, "track", needs_token=True),
        "import": partial(event_row, "import", needs_token=False, apart=secret.is_set),
        "engage": profile_row,
        "groups": group_row,
    }
    return [
        intake.route(
            f"/{name}",
            EVENTS,
            partial(api.parse, name, to_row),
            answer=answer,
            max_body=MAX_BODY_BYTES,
            error=error_response,
        )
        for name, to_row in rows.items()
    ]


class StrictParsed(list[tuple[Row, Any]]):
    """The valid records of a ``strict=1`` import, and the failed records of the others."""

    def __init__(self, valid: Parsed, failed: list[dict[str, Any]]) -> None:
        super().__init__(valid)
        self.failed = failed


def answer(parsed: Parsed) -> Response:
    """``verbose=1``'s answer, or for ``strict=1`` Mixpanel's import answer."""
    if not isinstance(parsed, StrictParsed):
        return Response(body=OK)
    if not parsed.failed:
        return Response.json({"code": 200, "num_records_imported": len(parsed), "status": "OK"})
    return Response.json(
        {
            "code": 400,
            "error": "some data points in the request failed validation",
            "failed_records": parsed.failed,
            "num_records_imported": len(parsed),
            "status": "Bad Request",
        },
        400,
    )


def error_response(err: HTTPError) -> Response:
    return Response.json({"status": 0, "error": err.message, **err.details}, err.status)


class ProjectSecret:
    """Who may ``/import``: anyone without a secret; with one, HTTP Basic that carries it.

    Mixpanel takes the project secret as the Basic user name with an empty password, and a
    service account as ``username:secret``; both forms are accepted (the secret as the user
    name, or as the password under any user name). The password of the first form is ignored.
    """

    def __init__(self, secret: str | None) -> None:
        if secret == "":
            raise ValueError("the Mixpanel project secret must not be empty")
        self._secret = None if secret is None else secret.encode()
        self.is_set = secret is not None

    def check(self, headers: Headers) -> None:
        if self._secret is None:
            return
        scheme, _, credentials = (headers.get("Authorization") or "").strip().partition(" ")
        if scheme.lower() != "basic":
            raise _unauthorized("/import needs HTTP Basic auth with the project secret")
        user, password = basic_credentials(credentials)
        if not any(hmac.compare_digest(c.encode(), self._secret) for c in (user, password)):
            raise _unauthorized("wrong project secret")


class MixpanelAPI:
    def __init__(self, secret: ProjectSecret) -> None:
        self.secret = secret

    def parse(self, name: str, to_row: Callable[[Any, str], Row], request: Request) -> Parsed:
        if name == "import":
            self.secret.check(request.headers)
        records = parse_records(request)
        if len(records) > MAX_RECORDS:
            raise HTTPError(
                413, "payload_too_large", f"{len(records)} records, over the limit of {MAX_RECORDS}"
            )
        if name == "import" and request.query.get("strict") == "1":
            return strict(to_row, records)
        return [(to_row(record, f"record {i}"), record) for i, record in enumerate(records)]


def strict(to_row: Callable[[Any, str], Row], records: list[Any]) -> StrictParsed:
    """Each record validated on its own: the valid ones, and a failed record for each other."""
    valid: Parsed = []
    failed: list[dict[str, Any]] = []
    for i, record in enumerate(records):
        try:
            valid.append((to_row(record, f"record {i}"), record))
        except HTTPError as e:
            failed.append(_failed_record(i, record, e.message))
    return StrictParsed(valid, failed)


def _failed_record(index: int, record: Any, message: str) -> dict[str, Any]:
    """Mixpanel's entry for a refused record; ``field`` is the first one the message names."""
    props = record.get("properties") if isinstance(record, dict) else None
    insert_id = props.get("$insert_id") if isinstance(props, dict) else None
    field = next((f for f in ("properties", "event") if f"'{f}'" in message), None)
    return {"index": index, "$insert_id": insert_id, "field": field, "message": message}


def parse_records(request: Request) -> list[Any]:
    """The records of a form (field ``data``) or JSON body: one object, or a list."""
    content_type = (request.headers.get("Content-Type") or "").partition(";")[0].strip().lower()
    data = request.body if content_type == "application/json" else _form_data(request.body)
    if _containers(data) > MAX_CONTAINERS:
        raise HTTPError(
            413, "payload_too_large", f"over {MAX_CONTAINERS} objects and arrays in one request"
        )
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise _invalid(f"data is not valid JSON: {e}") from None
    if isinstance(parsed, dict):
        return [parsed]
    if isinstance(parsed, list):
        return parsed
    raise _invalid("data must be a JSON object or a list of objects")


def _containers(data: str | bytes) -> int:
    """Opening brackets, an upper bound on the objects and arrays (some may be in strings)."""
    if isinstance(data, str):
        return data.count("[") + data.count("{")
    return data.count(b"[") + data.count(b"{")


def _form_data(body: bytes) -> str:
    try:
        fields = parse_qs(
            body.decode("utf-8"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except ValueError as e:  # also UnicodeDecodeError
        raise _invalid(f"the form cannot be read: {e}") from None
    values = fields.get("data")
    if not values:
        raise _invalid(
            "no 'data' field: send the records as form field 'data',"
            " or as a JSON body with Content-Type: application/json"
        )
    return values[0]


def event_row(
    type_: str, record: Any, where: str, *, needs_token: bool, apart: bool = False
) -> Row:
    """An event for ``/track`` (which needs ``properties.token``) or ``/import``; ``apart``:
    deduplicated apart from the other endpoint's events."""
    record = _object(record, where)
    event = record.get("event")
    if not isinstance(event, str) or not event:
        raise _invalid(f"{where} needs an 'event' name")
    props = record.get("properties")
    if not isinstance(props, dict):
        raise _invalid(f"{where} needs a 'properties' object")
    if needs_token:
        _require_token(props.get("token"), f"{where} needs properties.token")
    distinct_id = string_id(props.get("distinct_id"))
    body = encoded(record, where)  # first: the key is encoded from parts of it
    key = _event_key(event, distinct_id, props)
    key = f"{type_}:{key}" if apart else key
    return _row(type_, key, distinct_id, event, body, where, mixpanel_link(record))


def profile_row(record: Any, where: str) -> Row:
    record = _object(record, where)
    _require_token(record.get("$token"), f"{where} needs a '$token'")
    distinct_id = string_id(record.get("$distinct_id"))
    if distinct_id is None:
        raise _invalid(f"{where} needs a '$distinct_id'")
    operation = _operation(record, where)
    return _row("engage", uuid.uuid4().hex, distinct_id, operation, encoded(record, where), where)


def group_row(record: Any, where: str) -> Row:
    record = _object(record, where)
    _require_token(record.get("$token"), f"{where} needs a '$token'")
    group_key = record.get("$group_key")
    if not isinstance(group_key, str) or not group_key:
        raise _invalid(f"{where} needs a '$group_key'")
    if string_id(record.get("$group_id")) is None:
        raise _invalid(f"{where} needs a '$group_id'")
    operation = _operation(record, where)
    return _row("groups", uuid.uuid4().hex, None, operation, encoded(record, where), where)


def _event_key(event: str, distinct_id: str | None, props: dict[str, Any]) -> str:
    """Mixpanel's deduplication key: event, distinct_id, time and ``$insert_id``.

    ``time`` is compared in milliseconds, so seconds and milliseconds for the same instant
    match. An event without ``$insert_id`` cannot be deduplicated and gets a key of its own.
    """
    insert_id = props.get("$insert_id")
    if string_id(insert_id) is None:
        return uuid.uuid4().hex
    # the id as given (5 and "5" are two ids), the time as a number or as given
    return orjson.dumps([event, distinct_id, _millis(props.get("time")), insert_id]).decode()


def _millis(time: Any) -> Any:
    """A time in seconds or milliseconds, as milliseconds; anything else (a time beyond any
    real date among them) unchanged."""
    if isinstance(time, bool) or not isinstance(time, (int, float)) or not abs(time) < 1e15:
        return time
    return round(time * 1000) if abs(time) < 1e11 else round(time)


def _row(
    type_: str,
    key: str,
    user_id: str | None,
    event: str,
    body: bytes,
    where: str,
    link_key: str | None = None,
) -> Row:
    if len(body) > MAX_RECORD_BYTES:
        raise HTTPError(
            413, "payload_too_large", f"{where} is {len(body)} bytes, over {MAX_RECORD_BYTES}"
        )
    return Row(type_, key, user_id, event, body.decode(), link_key=link_key)


def _object(record: Any, where: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise _invalid(f"{where} is not a JSON object")
    return record


def _operation(record: dict[str, Any], where: str) -> str:
    for key in record:
        if key in OPERATIONS:
            return key
    raise _invalid(f"{where} has no operation (one of {', '.join(OPERATIONS)})")


def _require_token(token: Any, message: str) -> None:
    if not isinstance(token, str) or not token:
        raise _invalid(message)


def _invalid(message: str) -> HTTPError:
    return HTTPError(400, "invalid_request", message)


def _unauthorized(message: str) -> HTTPError:
    return HTTPError(401, "unauthorized", message)
