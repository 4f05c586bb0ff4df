"""``flush_after``: deliver before a handler's result is returned, for platforms that freeze
the process as soon as the handler returns (AWS Lambda, Google Cloud Functions), where what is
still queued waits, and is lost when the instance is recycled: the exit hook never runs."""

from __future__ import annotations

import functools
import inspect
import logging
from typing import TYPE_CHECKING, Any, Callable, TypeVar, cast

if TYPE_CHECKING:
    from .client import Client

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_TIMEOUT = 2.0
log = logging.getLogger("segment")


def flush_after(client_of: Callable[[], Client | None], timeout: float) -> Callable[[F], F]:
    """A decorator that flushes ``client_of()`` (looked up after the handler ran, so that a
    client the handler built is flushed too) within ``timeout`` seconds, whether the handler
    returned or raised. The flush never changes the result and never raises."""

    def decorate(func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await func(*args, **kwargs)
                finally:
                    await aflush_quietly(client_of(), timeout)

            return cast(F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            finally:
                flush_quietly(client_of(), timeout)

        return cast(F, run)

    return decorate


def decorator(client_of: Callable[[], Client | None], func: Any, timeout: float) -> Any:
    """``@flush_after``, ``@flush_after()``, ``@flush_after(3.0)`` and ``@flush_after(timeout=3.0)``
    all work: a callable first argument is the handler itself."""
    if callable(func):
        _check_timeout(timeout)
        return flush_after(client_of, timeout)(func)
    if func is not None:
        timeout = func
    _check_timeout(timeout)
    return flush_after(client_of, timeout)


def _check_timeout(timeout: Any) -> None:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
        raise ValueError(f"timeout must be a non-negative number of seconds, got: {timeout!r}")


def client_or_default(client: Client | None) -> Client | None:
    """``client``, else the module's default client if one was built (none is built here)."""
    if client is not None:
        return client
    import segment_clone

    return segment_clone.default_client


def flush_quietly(client: Client | None, timeout: float) -> None:
    """Flush within ``timeout``; a failure is logged, never raised (a handler's result, a
    server's shutdown, must not depend on it)."""
    if client is None:
        return
    try:
        client.flush(timeout)  # a timeout is logged by flush itself
    except Exception:
        log.exception("the flush failed; the caller goes on as if it had succeeded")


async def aflush_quietly(client: Client | None, timeout: float) -> None:
    """``flush_quietly`` for a running event loop."""
    if client is None:
        return
    try:
        await client.aflush(timeout)
    except Exception:
        log.exception("the flush failed; the caller goes on as if it had succeeded")
