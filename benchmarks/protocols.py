"""The wire formats the sink understands: per path, how to count a body's events and what to
answer so that the SDK counts the batch as delivered.

Only what the pinned SDKs post (see the Makefile): Segment and RudderStack ``/v1/batch`` and
PostHog's default capture ``/batch/`` are ``{"batch": [...]}`` JSON; Mixpanel ``/track`` and
``/engage`` are a form whose ``data`` field is a JSON array (upstream's and the facade's
synchronous consumers) or that JSON array as the body (``AsyncBufferedConsumer``), and every
Mixpanel SDK asks for ``verbose=1`` and checks the ``status`` of the answer; ``/import`` (a
client's ``Mixpanel`` destination, gzipped, ``strict=1``) is answered with the count imported.
Gzip is handled by the sink from ``Content-Encoding``, before the body reaches these functions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import parse_qs

import orjson  # cheap to parse with: the sink shares 2 cores with the SDK under test


class Route(NamedTuple):
    count: Callable[[bytes], int]
    reply: bytes | Callable[[int], bytes]
    """The body of the ``200`` answer, or how to write it from the number of events."""


def json_batch(body: bytes) -> int:
    """Segment, RudderStack and PostHog: a JSON object whose ``batch`` is the list of events."""
    return len(orjson.loads(body)["batch"])


def mixpanel(body: bytes) -> int:
    """Mixpanel: a JSON array, or ``data=<JSON array>`` among other form fields."""
    if body.startswith(b"["):
        return len(orjson.loads(body))
    return len(orjson.loads(parse_qs(body.decode("ascii"))["data"][0]))


MIXPANEL_OK = b'{"status": 1, "error": null}'


def imported(events: int) -> bytes:
    """Mixpanel's answer to an ``/import`` (``strict=1``) that took every record."""
    return b'{"code":200,"status":"OK","num_records_imported":%d}' % events


ROUTES = {
    "/v1/batch": Route(json_batch, b"{}"),
    "/batch/": Route(json_batch, b"{}"),
    "/track": Route(mixpanel, MIXPANEL_OK),
    "/engage": Route(mixpanel, MIXPANEL_OK),
    "/groups": Route(mixpanel, MIXPANEL_OK),
    "/import": Route(mixpanel, imported),
}
