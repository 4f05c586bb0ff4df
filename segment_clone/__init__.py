"""segment_clone: a drop-in, faster and lossless replacement for ``segment.analytics``.

Set the module globals, then call the proxies from any thread::

    import segment_clone as analytics
    analytics.write_key = "YOUR_WRITE_KEY"
    analytics.track("user-1", "Signed Up", {"plan": "pro"})
    analytics.flush()

The globals are read once, when the first proxied call builds ``default_client``; set
``default_client = None`` to apply later changes.
"""

from __future__ import annotations

import logging
import os
import threading
from types import ModuleType
from typing import Any

from .client import Client
from .hooks import BeforeSendOption
from .oauth_manager import DEFAULT_AUTH_SERVER, DEFAULT_SCOPE
from .scopes import Scope
from .serverless import DEFAULT_TIMEOUT, decorator
from .stats import OnError, StatsSnapshot
from .uploader import DEFAULT_MAX_RATE_LIMIT_DURATION, DEFAULT_MAX_TOTAL_BACKOFF_DURATION
from .version import VERSION

__version__ = VERSION

write_key: str | None = None
host: str | None = None
on_error: OnError | None = None
debug: bool = False
log_handler: logging.Handler | None = None
send: bool = True
sync_mode: bool = False
max_queue_size: int = 10000
gzip: bool = False
timeout: float = 15
max_retries: int = 10
proxies: dict[str, str] | None = None
thread: int = 1
upload_size: int = 100
upload_interval: float = 0.5
max_total_backoff_duration: float = DEFAULT_MAX_TOTAL_BACKOFF_DURATION
max_rate_limit_duration: float = DEFAULT_MAX_RATE_LIMIT_DURATION
shutdown_timeout: float = Client.DefaultConfig.shutdown_timeout
spool_path: str | None = None
spool_max_bytes: int = Client.DefaultConfig.spool_max_bytes
queue_full_policy: str = Client.DefaultConfig.queue_full_policy
queue_full_timeout: float = Client.DefaultConfig.queue_full_timeout
oauth_client_id: str | None = None
oauth_client_key: str | None = None
oauth_key_id: str | None = None
oauth_auth_server: str = DEFAULT_AUTH_SERVER
oauth_scope: str = DEFAULT_SCOPE
before_send: BeforeSendOption = None

default_client: Client | None = None
_create_lock = threading.Lock()


def _new_create_lock() -> None:
    """A forked child must not inherit the lock in a held state."""
    global _create_lock
    _create_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_create_lock)


def _chosen_destinations() -> Any:
    """``analytics.destinations`` as the application set it. Until it is set, the name is the
    ``segment_clone.destinations`` package (whose classes it is set with), meaning none."""
    chosen = globals().get("destinations")
    return None if isinstance(chosen, ModuleType) else chosen


def _client() -> Client:
    """The default client, built from the module globals on first use (thread-safe)."""
    global default_client
    with _create_lock:
        if not default_client:
            default_client = Client(
                write_key,
                host=host,
                debug=debug,
                max_queue_size=max_queue_size,
                send=send,
                on_error=on_error,
                gzip=gzip,
                max_retries=max_retries,
                sync_mode=sync_mode,
                timeout=timeout,
                proxies=proxies,
                thread=thread,
                upload_size=upload_size,
                upload_interval=upload_interval,
                log_handler=log_handler,
                oauth_client_id=oauth_client_id,
                oauth_client_key=oauth_client_key,
                oauth_key_id=oauth_key_id,
                oauth_auth_server=oauth_auth_server,
                oauth_scope=oauth_scope,
                max_total_backoff_duration=max_total_backoff_duration,
                max_rate_limit_duration=max_rate_limit_duration,
                shutdown_timeout=shutdown_timeout,
                spool_path=spool_path,
                spool_max_bytes=spool_max_bytes,
                queue_full_policy=queue_full_policy,
                queue_full_timeout=queue_full_timeout,
                before_send=before_send,
                destinations=_chosen_destinations(),
            )
        return default_client


def track(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """Send a track event; see ``Client.track``."""
    return (default_client or _client()).track(*args, **kwargs)


def identify(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """Send an identify call; see ``Client.identify``."""
    return (default_client or _client()).identify(*args, **kwargs)


def group(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """Send a group call; see ``Client.group``."""
    return (default_client or _client()).group(*args, **kwargs)


def alias(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """Send an alias call; see ``Client.alias``."""
    return (default_client or _client()).alias(*args, **kwargs)


def page(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """Send a page call; see ``Client.page``."""
    return (default_client or _client()).page(*args, **kwargs)


def screen(*args: Any, **kwargs: Any) -> tuple[bool, dict[str, Any]]:
    """Send a screen call; see ``Client.screen``."""
    return (default_client or _client()).screen(*args, **kwargs)


def flush(timeout: float | None = None) -> int:
    """Deliver everything queued; returns the number still pending (0 unless timed out)."""
    return _client().flush(timeout)


def join(timeout: float | None = None) -> int:
    """Stop the consumer threads; returns the number of messages still pending."""
    return _client().join(timeout)


def shutdown(timeout: float | None = None) -> int:
    """Flush, then stop the consumer threads; returns the number of messages still pending."""
    return _client().shutdown(timeout)


async def aflush(timeout: float | None = None) -> int:
    """``flush()`` for a running event loop, without blocking it; see ``Client.aflush``."""
    return await _client().aflush(timeout)


async def ashutdown(timeout: float | None = None) -> int:
    """``shutdown()`` for a running event loop, without blocking it; see ``Client.ashutdown``."""
    return await _client().ashutdown(timeout)


scope = Scope
"""``scope(user_id, anonymous_id, context, properties, integrations, fresh)``; see ``Scope``."""


def flush_after(handler: Any = None, *, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """Decorate a serverless handler (sync or async): the default client flushes, within
    ``timeout`` seconds, before the handler's result is returned, since the platform may freeze
    the process right after. Never changes the result and never raises on its own account.
    ``@flush_after``, ``@flush_after()`` and ``@flush_after(timeout=3.0)`` all work."""
    return decorator(lambda: default_client, handler, timeout)


def stats() -> StatsSnapshot:
    """Delivery counters of the default client; see ``Client.stats``."""
    return _client().stats()


__all__ = [
    "VERSION",
    "Client",
    "aflush",
    "alias",
    "ashutdown",
    "default_client",
    "flush",
    "flush_after",
    "group",
    "identify",
    "join",
    "page",
    "scope",
    "screen",
    "shutdown",
    "stats",
    "track",
]
