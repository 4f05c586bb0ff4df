"""The consumer of a client's Mixpanel lane: Segment messages in, Mixpanel requests out.

A client with a ``Mixpanel`` destination queues the same encoded Segment message for it as for
Segment. This consumer, on its own thread, maps each message once (``to_mixpanel``), encodes
each record once, and posts the records by endpoint (``/import``, ``/track``, ``/engage``,
``/groups``) through the shared keep-alive transport, in the JSON wire of the Mixpanel face's
background lanes (``segment_clone.mixpanel.wire``: ``/import`` gzipped with ``strict=1``).
Batching, the retry policy, the spool, ``stats()`` and the reports are the engine's own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from .. import request
from ..consumer import Consumer
from ..encoding import decode_message
from ..mixpanel import wire
from ..mixpanel.async_consumer import MAX_BATCH_BYTES
from ..mixpanel.buffered import MAX_BATCH, MAX_IMPORT_BATCH
from ..mixpanel.errors import MixpanelAPIError
from ..mixpanel.transport import endpoint_urls
from .mixpanel_mapping import Refused, encode_record, to_mixpanel

if TYPE_CHECKING:
    from .mixpanel import Mixpanel

WIRE_ENDPOINTS = {"import": "imports", "track": "events", "engage": "people", "groups": "groups"}
"""The mapping's endpoint names, as the Mixpanel face's wire and endpoint table name them."""
ORDER = ("imports", "events", "people", "groups")
"""Events before the profiles and groups they may create, as Mixpanel's own SDKs flush."""


@dataclass
class _Request:
    """One POST of a batch: the records for one endpoint, and which message each came from."""

    endpoint: str
    records: list[bytes] = field(default_factory=list)
    sources: list[bytes] = field(default_factory=list)
    size: int = 0


@dataclass
class _Plan:
    """A batch, mapped: the requests still to make. Kept across retries, so that a retry maps
    nothing again and re-sends only what the server has not yet taken."""

    batch: list[bytes]
    requests: list[_Request]


class MixpanelLaneConsumer(Consumer):
    """Delivers a client's queue to one Mixpanel project (see the module docstring)."""

    def __init__(self, queue: Any, destination: Mixpanel, **settings: Any) -> None:
        super().__init__(queue, "", **settings)
        self.name = "segment-clone-mixpanel"
        self.destination = destination
        urls = endpoint_urls(destination.base_url)
        secret = destination.api_secret or destination.token
        self._targets = {
            endpoint: (
                wire.url(urls[endpoint], endpoint, destination.credentials),
                wire.headers(
                    endpoint,
                    (None, secret if endpoint == "imports" else None),
                    destination.credentials,
                ),
            )
            for endpoint in ORDER
        }
        self._plan: _Plan | None = None
        self.refused: set[int] = set()
        """Messages (by ``id``) of the batch last sent that were refused one by one."""

    def _send(self, batch: list[bytes], retry_count: int) -> None:
        plan = self._plan
        if plan is None or plan.batch is not batch:
            self.refused = set()
            plan = self._plan = self._map(batch)
        while plan.requests:
            self._post(plan.requests[0], retry_count)
            plan.requests.pop(0)
        self._plan = None

    def _map(self, batch: list[bytes]) -> _Plan:
        """Every message's records, encoded once, in requests within Mixpanel's limits. A
        message Mixpanel would refuse is reported now and sends nothing."""
        now_ms = int(time.time() * 1000)
        requests: dict[str, list[_Request]] = {}
        settings = self.destination.settings
        for data in batch:
            try:
                records = to_mixpanel(_decode(data), settings, now_ms=now_ms, measure=False)
                encoded = [(WIRE_ENDPOINTS[r.endpoint], encode_record(r)) for r in records]
            except Refused as e:
                self._refuse("refused", e, [data])
                continue
            for endpoint, record in encoded:
                self._add(requests.setdefault(endpoint, []), endpoint, record, data)
        return _Plan(batch, [r for endpoint in ORDER for r in requests.get(endpoint, [])])

    @staticmethod
    def _add(requests: list[_Request], endpoint: str, record: bytes, source: bytes) -> None:
        limit = MAX_IMPORT_BATCH if endpoint == "imports" else MAX_BATCH
        last = requests[-1] if requests else None
        if (
            last is None
            or len(last.records) >= limit
            or last.size + len(record) + 1 > MAX_BATCH_BYTES
        ):
            last = _Request(endpoint)
            requests.append(last)
        last.records.append(record)
        last.sources.append(source)
        last.size += len(record) + 1

    def _post(self, req: _Request, retry_count: int) -> None:
        url, headers = self._targets[req.endpoint]
        if retry_count:
            headers = {**headers, "X-Retry-Count": str(retry_count)}
        response = request._session.post(
            url,
            data=wire.body(req.endpoint, req.records),
            headers=headers,
            timeout=self.timeout,
        )
        failed = [
            f for f in wire.failed_records(req.endpoint, response) if f.position < len(req.records)
        ]
        for f in failed:  # one report per record, each with Mixpanel's reason
            error = MixpanelAPIError(response.status_code, f.describe(), response, req.endpoint)
            self._refuse("rejected", error, [req.sources[f.position]])

    def _refuse(self, reason: str, error: Exception, messages: list[bytes]) -> None:
        self.refused.update(map(id, messages))
        self.reporter.report(reason, error, messages)

    def _delivered(self, batch: list[Any]) -> int:
        return len(batch) - len(self.refused)


def _decode(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:  # an integer beyond 64 bits, which only json keeps
        return decode_message(data)


__all__ = ["MixpanelLaneConsumer"]
