"""What both flag providers share: the assignment hash, request parameters, exposure dispatch.

The hash is FNV-1a (64 bit) of the key and salt, reduced to hundredths: Mixpanel's servers and
every SDK assign with it, so a context lands in the same variant wherever it is evaluated.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from concurrent.futures import Executor, Future
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import httpx

logger = logging.getLogger(__name__)

EXPOSURE_EVENT = "$experiment_started"

REQUEST_HEADERS: dict[str, str] = {
    "X-Scheme": "https",
    "X-Forwarded-Proto": "https",
    "Content-Type": "application/json",
}

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK_64 = (1 << 64) - 1

Tracker = Callable[[Any, str, dict[str, Any]], object]
"""``Mixpanel.track``'s shape: ``(distinct_id, event_name, properties)``."""


def _fnv1a64(data: bytes) -> int:
    value = _FNV_OFFSET
    for byte in data:
        value = ((value ^ byte) * _FNV_PRIME) & _MASK_64
    return value


def normalized_hash(key: str, salt: str) -> float:
    """Where ``key`` falls in [0, 1) for ``salt``, in steps of 0.01."""
    return (_fnv1a64(key.encode() + salt.encode()) % 100) / 100.0


def prepare_common_query_params(
    token: str, sdk_version: str, project_id: str | None = None
) -> dict[str, str]:
    """The query parameters of every flags request; ``project_id`` with a service account."""
    params = {"mp_lib": "python", "lib_version": sdk_version, "token": token}
    if project_id is not None:
        params["project_id"] = project_id
    return params


def generate_traceparent() -> str:
    """A fresh W3C ``traceparent`` header (sampled), so a request can be traced server-side."""
    return f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"


def dispatch_exposure(
    tracker: Tracker, executor: Executor | None, distinct_id: Any, properties: dict[str, Any]
) -> None:
    """Send an exposure event through ``tracker``, on ``executor`` when there is one.

    A tracker that raises (a consumer that could not deliver) is logged and never reaches the
    evaluation's caller; upstream lets it raise out of ``get_variant`` when there is no executor.
    An executor that refuses the task (shut down) costs the event, logged.
    """
    if executor is None:
        try:
            tracker(distinct_id, EXPOSURE_EVENT, properties)
        except Exception as error:
            logger.error("Exposure event failed: %s: %s", type(error).__name__, error)
        return
    try:
        future = executor.submit(tracker, distinct_id, EXPOSURE_EVENT, properties)
    except RuntimeError:
        logger.exception("Exposure event dropped: the exposure executor refused it")
        return
    future.add_done_callback(_log_tracker_future_exception)


def _log_tracker_future_exception(future: Future[Any]) -> None:
    # A cancelled future's exception() raises CancelledError, a BaseException that would escape
    # the executor's callback loop.
    if future.cancelled():
        return
    error = future.exception()
    if error is not None:
        logger.error(
            "Exposure event failed on executor thread: %s: %s", type(error).__name__, error
        )


def close_async_client_from_sync(client: httpx.AsyncClient) -> None:
    """Close ``client`` from synchronous code that has no event loop running (connections
    left by an event loop that has since ended are dropped: they cannot be closed any more).

    From inside a running loop this raises ``RuntimeError``: a close scheduled on that loop
    could be cancelled by its teardown, so async code must ``await`` ``__aexit__`` instead.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        try:
            asyncio.run(client.aclose())
        except RuntimeError as error:  # its connections were opened by a loop that has ended
            logger.debug("Closed the async flags client without its connections: %s", error)
        return
    raise RuntimeError(
        "close_async_client_from_sync() cannot be called from a running event loop; "
        "use 'async with provider:' or await the provider's __aexit__"
    )
