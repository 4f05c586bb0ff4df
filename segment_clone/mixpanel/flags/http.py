"""The flag providers' HTTP clients and how a failed request is logged.

Requests go through ``httpx`` (as upstream's do, so ``respx`` mocks them). A failure is logged
once when a streak of failures starts, and once when it ends, never per request: a definitions
endpoint that is down must not flood the log every polling interval or every evaluation. The
message never holds the request URL, whose query carries the project token.
"""

from __future__ import annotations

import functools
import logging
import ssl
import threading
from typing import Any, TypeVar

import httpx

from ..credentials import ServiceAccountCredentials
from .types import FlagsConfig
from .utils import REQUEST_HEADERS, close_async_client_from_sync

_Provider = TypeVar("_Provider", bound="HttpProvider")

logging.getLogger("httpx").setLevel(logging.ERROR)


def base_url(api_host: str) -> str:
    """``https://`` + ``api_host``, or ``api_host`` itself when it is already a URL (so that a
    provider can be pointed at the local collector, ``http://127.0.0.1:8787``)."""
    if api_host.startswith(("http://", "https://")):
        return api_host.rstrip("/")
    return f"https://{api_host}"


@functools.lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    """One verifying TLS context for every flag client of the process: httpx builds a new one
    per client otherwise, at about 0.1 s each, and each provider has two clients."""
    return httpx.create_ssl_context()


def client_options(
    token: str, config: FlagsConfig, credentials: ServiceAccountCredentials | None
) -> dict[str, Any]:
    """Keyword arguments for ``httpx.Client``/``AsyncClient``: Basic auth with the service
    account when there is one, else the token with an empty password."""
    if credentials is not None:
        auth = httpx.BasicAuth(credentials.username, credentials.secret)
    else:
        auth = httpx.BasicAuth(token, "")
    return {
        "base_url": base_url(config.api_host),
        "headers": REQUEST_HEADERS,
        "auth": auth,
        "timeout": httpx.Timeout(config.request_timeout_in_seconds),
        "verify": _tls(),
    }


def describe(error: BaseException) -> str:
    """A failure in words, without the URL: the status and body of an HTTP error, else the
    exception's text (its type when it has none)."""
    if isinstance(error, httpx.HTTPStatusError):
        body = error.response.text.strip()
        status = error.response.status_code
        return f"HTTP {status}: {body}" if body else f"HTTP {status}"
    return str(error) or type(error).__name__


class FailureLog:
    """Logs the first failure of a streak as an error and the recovery as info; failures in
    between go to debug."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self._logger = logger
        self._what = what
        self._failing = False
        self._lock = threading.Lock()

    def failed(self, error: BaseException) -> None:
        with self._lock:
            first, self._failing = not self._failing, True
        level = logging.ERROR if first else logging.DEBUG
        self._logger.log(level, "Failed to %s: %s", self._what, describe(error))
        if first:
            self._logger.debug("Later failures are logged at debug level until one succeeds")

    def succeeded(self) -> None:
        with self._lock:
            recovered, self._failing = self._failing, False
        if recovered:
            self._logger.info("%s: succeeded again", self._what.capitalize())


class HttpProvider:
    """A flag provider's two httpx clients (one for each calling style, as upstream) and their
    closing: ``shutdown()`` and both context managers. ``_stop``/``_astop`` end what the
    provider runs in the background first."""

    def __init__(
        self, token: str, config: FlagsConfig, credentials: ServiceAccountCredentials | None
    ) -> None:
        self._client_options = client_options(token, config, credentials)
        self._open_clients()

    def _open_clients(self) -> None:
        self._sync_client = httpx.Client(**self._client_options)
        self._async_client = httpx.AsyncClient(**self._client_options)

    def _stop(self) -> None:
        """Stop background work before the clients close; nothing by default."""

    async def _astop(self) -> None:
        self._stop()

    def shutdown(self) -> None:
        """Stop and close both HTTP clients, from code with no event loop running (inside one,
        use ``async with`` or await ``__aexit__``)."""
        self._stop()
        self._sync_client.close()
        close_async_client_from_sync(self._async_client)

    def __enter__(self: _Provider) -> _Provider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    async def __aenter__(self: _Provider) -> _Provider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._astop()
        await self._async_client.aclose()
        self._sync_client.close()
