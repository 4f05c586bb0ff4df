"""``BufferedConsumer``: per-endpoint buffers flushed in batches through a ``Consumer``.

Fixed against upstream: each message keeps its own auth (upstream kept one tuple for the whole
instance, so a ``track`` after an ``import_data`` stripped the secret from buffered imports);
a batch leaves the buffer as soon as it is delivered, so a later failure cannot make the next
flush send it again; ``max_size <= 0`` is refused instead of looping forever; imports may be
batched up to Mixpanel's 2000 when asked for; and a lock makes it safe to share between threads.
"""

from __future__ import annotations

import threading

from .consumer import Consumer
from .credentials import ServiceAccountCredentials
from .errors import MixpanelException
from .transport import DEFAULT_API_HOST, ENDPOINT_PATHS, Auth, check_endpoint, normalize_auth

MAX_BATCH = 50
"""Upstream's cap for every endpoint, kept as the default."""
MAX_IMPORT_BATCH = 2000
"""What ``/import`` accepts per request; reachable through ``import_max_size``."""


def batch_size(name: str, value: int, cap: int) -> int:
    """``value`` capped at ``cap``; a size below 1 can never make progress, so it is refused."""
    if value <= 0:
        raise ValueError(f"{name} must be at least 1, got: {value!r}")
    return min(cap, value)


class BufferedConsumer:
    """Holds messages per endpoint and sends them ``max_size`` at a time.

    Nothing is sent until a buffer reaches its size or ``flush()`` is called; call ``flush()``
    before exiting (or use ``AsyncBufferedConsumer``, which flushes on its own).
    ``import_max_size`` (keyword only, default ``max_size``) lets ``/import`` batches grow to
    2000 messages.
    """

    def __init__(
        self,
        max_size: int = MAX_BATCH,
        events_url: str | None = None,
        people_url: str | None = None,
        import_url: str | None = None,
        request_timeout: float | None = None,
        groups_url: str | None = None,
        api_host: str = DEFAULT_API_HOST,
        retry_limit: int = 4,
        retry_backoff_factor: float = 0.25,
        verify_cert: bool = True,
        credentials: ServiceAccountCredentials | None = None,
        *,
        import_max_size: int | None = None,
    ) -> None:
        self._max_size = batch_size("max_size", max_size, MAX_BATCH)
        self._import_max_size = (
            self._max_size
            if import_max_size is None
            else batch_size("import_max_size", import_max_size, MAX_IMPORT_BATCH)
        )
        self._consumer = Consumer(
            events_url, people_url, import_url, request_timeout, groups_url, api_host,
            retry_limit, retry_backoff_factor, verify_cert, credentials,
        )  # fmt: skip
        self._buffers: dict[str, list[str]] = {name: [] for name in ENDPOINT_PATHS}
        self._auths: dict[str, list[Auth]] = {name: [] for name in ENDPOINT_PATHS}
        """The auth of each buffered message, parallel to ``_buffers``."""
        self._lock = threading.RLock()

    def send(
        self,
        endpoint: str,
        json_message: str,
        api_key: str | Auth | None = None,
        api_secret: str | None = None,
    ) -> None:
        """Buffer ``json_message``; flush ``endpoint`` when its buffer is full."""
        check_endpoint(endpoint, self._buffers)
        auth = normalize_auth(api_key, api_secret)
        with self._lock:
            buffer = self._buffers[endpoint]
            buffer.append(json_message)
            self._auths[endpoint].append(auth)
            if len(buffer) >= self._limit(endpoint):
                self._flush_endpoint(endpoint)

    def flush(self) -> None:
        """Send every buffered message: events, people, groups, then imports."""
        with self._lock:
            for endpoint in self._buffers:
                self._flush_endpoint(endpoint)

    def _limit(self, endpoint: str) -> int:
        return self._import_max_size if endpoint == "imports" else self._max_size

    def _flush_endpoint(self, endpoint: str) -> None:
        """Send ``endpoint``'s buffer in batches of consecutive messages sharing one auth.

        On failure the failing batch and everything after it stay buffered; the raised
        ``MixpanelException`` carries the batch text as ``.message`` and ``.endpoint``.
        """
        buffer, auths = self._buffers[endpoint], self._auths[endpoint]
        limit = self._limit(endpoint)
        while buffer:
            auth, count = auths[0], 1
            while count < min(limit, len(buffer)) and auths[count] == auth:
                count += 1
            batch_json = "[" + ",".join(buffer[:count]) + "]"
            try:
                self._consumer.send(endpoint, batch_json, api_key=auth)
            except MixpanelException as orig:
                error = MixpanelException(orig)
                error.message = batch_json
                error.endpoint = endpoint
                raise error from orig
            del buffer[:count], auths[:count]


__all__ = ["MAX_BATCH", "MAX_IMPORT_BATCH", "BufferedConsumer", "batch_size"]
