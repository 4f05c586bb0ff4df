"""Deliver one batch, applying the retry policy; shared by consumer threads and ``sync_mode``.

Retryable failures with a ``Retry-After`` wait that long without spending the retry budget,
bounded by ``max_rate_limit_duration``; other retryable failures take the counted backoff of
``retry.backoff_delays``, bounded by ``retries`` and ``max_total_backoff_duration``. Each
outcome other than success is raised as ``GiveUp`` with the reason ``stats()`` counts it under.
The batch stays in hand through every retry, so its order and ``X-Retry-Count`` are kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from . import request
from .errors import APIError, FatalError, ShutdownInterrupted
from .request import TokenSource, parse_retry_after
from .retry import backoff_delays, is_retryable
from .stats import Stats
from .transport import Transport

DEFAULT_MAX_TOTAL_BACKOFF_DURATION = 43200
DEFAULT_MAX_RATE_LIMIT_DURATION = 1800
REAUTHORIZE_STATUSES = frozenset({401, 403})

log = logging.getLogger("segment")


class GiveUp(Exception):
    """A batch will not be delivered; ``cause`` is what ``on_error`` receives."""

    def __init__(self, reason: str, cause: BaseException) -> None:
        super().__init__(reason, cause)
        self.reason = reason
        self.cause = cause


class Uploader:
    """Holds one keep-alive session and the settings that shape a delivery."""

    _clock: Callable[[], float] = staticmethod(time.monotonic)
    """The clock behind both retry budgets; tests replace it together with ``_wait``."""

    def __init__(
        self,
        write_key: str,
        host: str | None = None,
        gzip: bool = False,
        retries: int = 10,
        timeout: float = 15,
        proxies: dict[str, str] | None = None,
        oauth_manager: TokenSource | None = None,
        max_total_backoff_duration: float = DEFAULT_MAX_TOTAL_BACKOFF_DURATION,
        max_rate_limit_duration: float = DEFAULT_MAX_RATE_LIMIT_DURATION,
        stats: Stats | None = None,
    ) -> None:
        self.write_key = write_key
        self.host = host
        self.gzip = gzip
        self.retries = retries
        self.timeout = timeout
        self.proxies = proxies
        self.oauth_manager = oauth_manager
        self.max_total_backoff_duration = max_total_backoff_duration
        self.max_rate_limit_duration = max_rate_limit_duration
        self.stats = stats if stats is not None else Stats()
        self.transport = Transport()
        self._stopping = threading.Event()

    def request(self, batch: list[bytes]) -> None:
        """Deliver ``batch`` or raise ``GiveUp`` / ``ShutdownInterrupted``."""
        attempt = 0
        failures = 0
        first_failure: float | None = None
        rate_limited_since: float | None = None
        reauthorized = False
        delays = backoff_delays()
        while True:
            try:
                self._send(batch, attempt)
                return
            except FatalError as e:
                raise GiveUp("fatal", e) from e
            except APIError as e:
                if e.status in REAUTHORIZE_STATUSES and self.oauth_manager and not reauthorized:
                    # post() has cleared the token; one immediate retry fetches a fresh one.
                    reauthorized = True
                    attempt += 1
                    continue
                if not is_retryable(e.status, self.oauth_manager is not None):
                    log.error("Non-retryable error %s after %d attempts", e.status, attempt + 1)
                    raise GiveUp("rejected", e) from e
                error: Exception = e
                retry_after = parse_retry_after(e.response)
            except Exception as e:
                error, retry_after = e, None
            attempt += 1
            now = self._clock()
            if retry_after:
                if rate_limited_since is None:
                    rate_limited_since = now
                if now + retry_after - rate_limited_since > self.max_rate_limit_duration:
                    raise GiveUp("rate_limit_exceeded", error) from error
                log.debug("rate limited; retrying in %ss", retry_after)
                self._pause_before_retry(retry_after)
                continue
            failures += 1
            if first_failure is None:
                first_failure = now
            remaining = self.max_total_backoff_duration - (now - first_failure)
            if failures > self.retries or remaining <= 0:
                log.error("All %d retries exhausted after %d total attempts", self.retries, attempt)
                raise GiveUp("retries_exhausted", error) from error
            self._pause_before_retry(min(next(delays), remaining))

    def _send(self, batch: list[bytes], retry_count: int) -> None:
        """One attempt; subclasses for other APIs override this and keep the retry policy."""
        request.post(
            self.write_key,
            self.host,
            gzip=self.gzip,
            timeout=self.timeout,
            proxies=self.proxies,
            oauth_manager=self.oauth_manager,
            retry_count=retry_count,
            transport=self.transport,
            batch=batch,
        )

    def _pause_before_retry(self, seconds: float) -> None:
        self.stats.add("retried")
        self._wait(seconds)

    def _wait(self, seconds: float) -> None:
        """Sleep, but wake and raise ``ShutdownInterrupted`` as soon as ``stop()`` is called."""
        if self._stopping.wait(seconds):
            raise ShutdownInterrupted()

    def stop(self) -> None:
        self._stopping.set()
