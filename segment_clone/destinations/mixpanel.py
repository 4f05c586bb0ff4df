"""``segment_clone.destinations.Mixpanel``: where and how Segment calls reach a Mixpanel project."""

from __future__ import annotations

import copy
import time
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from ..mixpanel.credentials import ServiceAccountCredentials
from .mixpanel_mapping import (
    FUTURE_TOLERANCE_MS,
    MAX_PROPERTIES,
    MAX_RECORD_BYTES,
    MappingSettings,
    Record,
    Refused,
    encode_record,
    to_mixpanel,
)

FEW_PROPERTIES = MAX_PROPERTIES - 45
"""Fewer properties than this stay under Mixpanel's limit whatever the mapping adds (at most
45: ids, context, library)."""
SMALL_MESSAGE = (MAX_RECORD_BYTES - 4096) // 2
"""A message under this many bytes maps to a record under Mixpanel's limit: a record holds at
most twice its message (the ids appear twice) plus 4 KB of added keys."""
EARLIEST_TEXT = "1971-01-01T00:00:00.000+00:00"
"""Mixpanel's earliest time in the SDK's timestamp form (``utc_now_iso``)."""
_latest: tuple[float, str] = (0.0, "")
"""Until when (``time.time()``) the text below holds, and the latest time Mixpanel takes in the
SDK's form, to the second below; replaced whole, by one assignment."""


def _latest_text() -> str:
    """Now plus Mixpanel's hour of tolerance, as text, formatted at most once a second."""
    global _latest
    now = time.time()
    until, text = _latest
    if now >= until:
        second = int(now)
        ahead = time.gmtime(second + FUTURE_TOLERANCE_MS // 1000)
        text = time.strftime("%Y-%m-%dT%H:%M:%S", ahead) + ".000+00:00"
        _latest = (second + 1, text)
    return text


class Mixpanel:
    """A Mixpanel project as a destination of Segment calls.

    :param token: the project token.
    :param api_host: a host name, as ``mixpanel.Mixpanel`` takes it (``api.mixpanel.com``,
        ``api-eu.mixpanel.com``, ``api-in.mixpanel.com``), or a base URL with a scheme
        (``http://127.0.0.1:8787``), so that the local collector can stand in for Mixpanel.
    :param credentials: a service account for ``/import``; without one, the project token is
        the Basic-auth user name, as Mixpanel allows.
    :param api_secret: the project secret, Mixpanel's older way to authenticate ``/import``.
    :param page_names: ``"viewed"`` (``"Viewed {name}"``) or ``"loaded"`` (``"Loaded a Page"``).
    :param group_key: Mixpanel's ``$group_key`` for ``group`` calls.
    :param source_name: written as ``segment_source_name`` on every event when set.
    """

    label = "mixpanel"

    def __init__(
        self,
        token: str,
        api_host: str = "api.mixpanel.com",
        credentials: ServiceAccountCredentials | None = None,
        api_secret: str | None = None,
        *,
        page_names: Literal["viewed", "loaded"] = "viewed",
        group_key: str = "$group_id",
        source_name: str | None = None,
    ) -> None:
        self.settings = MappingSettings(token, page_names, group_key, source_name)
        self.base_url = base_url(api_host)
        if credentials is not None and not isinstance(credentials, ServiceAccountCredentials):
            raise TypeError("credentials must be a ServiceAccountCredentials")
        if api_secret is not None and (not isinstance(api_secret, str) or not api_secret):
            raise ValueError("api_secret must be a non-empty string")
        self.credentials = credentials
        self.api_secret = api_secret

    @property
    def token(self) -> str:
        return self.settings.token

    def map(self, message: Mapping[str, Any], now_ms: int | None = None) -> list[Record]:
        """The records one Segment message becomes (see :func:`to_mixpanel`)."""
        return to_mixpanel(message, self.settings, now_ms=now_ms)

    def at(self, api_host: str) -> Mixpanel:
        """The same project and settings, delivered to ``api_host`` instead (a host name or a
        base URL): how the pytest plugin points an application's destination at its collector."""
        moved = copy.copy(self)
        moved.base_url = base_url(api_host)
        return moved

    def refusal(self, message: Mapping[str, Any], size: int) -> str | None:
        """Why Mixpanel would refuse ``message`` (``size`` bytes encoded), or None: checked
        on the caller's thread, so that such a message is reported at once, never sent to fail.

        The usual message, far from Mixpanel's limits and stamped in the SDK's own UTC form
        (which sorts as text), takes a few comparisons; any other is checked in full."""
        stamp = message.get("timestamp")
        if (
            size < SMALL_MESSAGE
            and type(stamp) is str
            and len(stamp) == len(EARLIEST_TEXT)
            and stamp.endswith("+00:00")
            and stamp >= EARLIEST_TEXT
            and (stamp <= _latest[1] or stamp <= _latest_text())  # the text only grows
        ):
            body = message.get("properties") or message.get("traits")
            if body is None or len(body) < FEW_PROPERTIES:
                return None
        return self._refusal_in_full(message)

    def _refusal_in_full(self, message: Mapping[str, Any]) -> str | None:
        now_ms = int(time.time() * 1000)
        try:
            for record in to_mixpanel(message, self.settings, now_ms=now_ms, measure=False):
                encode_record(record)
        except Refused as e:
            return str(e)
        return None

    def __repr__(self) -> str:
        # The token is an identifier, not a secret, but the secret and credentials never show.
        return f"Mixpanel(token={self.token!r}, api_host={self.base_url!r})"


def base_url(api_host: str) -> str:
    """``https://`` plus a bare host name, or a base URL with its scheme, without a final slash."""
    if not isinstance(api_host, str) or not api_host.strip():
        raise ValueError("api_host must be a host name or a base URL")
    api_host = api_host.strip()
    url = (api_host if "://" in api_host else f"https://{api_host}").rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"api_host {api_host!r} is neither a host name nor an http(s) URL")
    if parts.query or parts.fragment:
        raise ValueError(f"api_host {api_host!r} must not carry a query or a fragment")
    return url
