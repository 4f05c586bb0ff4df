"""The retry engine: deliver one batch under the policy of analytics-python 2.4.0.

``request(batch)`` is upstream's method with upstream's contract: it retries retryable failures
with the counted backoff of ``retry.backoff_delays`` (bounded by ``retries`` and
``max_total_backoff_duration``) and raises the final exception when they run out. A retryable
answer with a ``Retry-After`` is not retried there: it opens or extends a rate-limit episode
(``rate_limited_until``, ``rate_limit_start_time``) and is raised at once, flagged
``rate_limited``. ``deliver(batch)`` adds the episode's gate around one ``request``: it waits out
the episode within ``max_rate_limit_duration`` and turns each final outcome into ``GiveUp`` with
the reason ``stats()`` counts it under.

Consumer threads, ``sync_mode`` and the Mixpanel lanes all stand on this one engine; each
subclass says only how one attempt is sent (``_send``). ``time.monotonic`` and ``time.sleep``
are looked up at call time, where upstream looks them up, so tests that patch them work.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from .errors import APIError, FatalError, ShutdownInterrupted
from .request import TokenSource, parse_retry_after, seam_batch
from .retry import backoff_delays, is_retryable
from .stats import Stats

DEFAULT_MAX_TOTAL_BACKOFF_DURATION = 43200
DEFAULT_MAX_RATE_LIMIT_DURATION = 1800
REAUTHORIZE_STATUSES = frozenset({401, 403})
WAIT_SLICE = 0.1
"""Seconds a retry wait sleeps between checks of ``running``: ``pause()`` cuts a wait short
within this long."""


class GiveUp(Exception):
    """A batch will not be delivered; ``cause`` is what ``on_error`` receives."""

    def __init__(self, reason: str, cause: BaseException) -> None:
        super().__init__(reason, cause)
        self.reason = reason
        self.cause = cause


class Uploader(ABC):
    """The settings that shape a delivery, and the retry and rate-limit state of one sender."""

    log = logging.getLogger("segment")

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
        self._stopping = threading.Event()
        self._episode = threading.RLock()
        """Guards the rate-limit episode below: ``sync_mode`` shares one uploader among every
        caller thread. Re-entrant, so a signal handler's ``track()`` cannot deadlock on it."""
        self.rate_limited_until: float | None = None
        """Monotonic time before which the server asked not to be sent to, or None."""
        self.rate_limit_start_time: float | None = None
        """Monotonic time the current rate-limit episode began, or None outside one."""
        self._episode_attempts = 0
        self._episode_error: APIError | None = None

    @abstractmethod
    def _send(self, batch: list[Any], retry_count: int) -> Any:
        """One attempt; raise ``APIError`` for an answer that is not a success."""

    def _post_with(self, post: Callable[..., Any], batch: list[Any], retry_count: int) -> Any:
        """One attempt through ``post``, with the arguments analytics-python passed it.

        Subclasses pass the ``post`` of their own module, looked up at call time, so each
        keeps the seam upstream's users patch (``consumer.post``, ``client.post``)."""
        return post(
            self.write_key,
            self.host,
            gzip=self.gzip,
            timeout=self.timeout,
            batch=seam_batch(post, batch),
            proxies=self.proxies,
            oauth_manager=self.oauth_manager,
            retry_count=retry_count,
        )

    def request(self, batch: list[Any]) -> Any:
        """Send ``batch``, retrying as the policy allows; return what ``_send`` returned.

        Raises the final exception (``APIError``, the network error, ``FatalError``) once the
        retries or the backoff budget run out, a rate-limited ``APIError`` at once, and
        ``ShutdownInterrupted`` when ``pause()`` cuts a backoff wait short.
        """
        earlier = self._episode_attempts  # a rate-limited batch's X-Retry-Count counts on
        attempts = 0
        backoff_attempts = 0
        first_failure: float | None = None
        reauthorized = False
        delays = backoff_delays()
        while True:
            attempts += 1
            try:
                return self._send(batch, earlier + attempts - 1)
            except FatalError as e:
                self.log.error("Fatal error after %d attempts: %s", attempts, e)
                raise
            except APIError as e:
                oauth = self.oauth_manager is not None
                if e.status in REAUTHORIZE_STATUSES and oauth and not reauthorized:
                    reauthorized = True  # post() dropped the token; try once with a new one
                    continue
                if not is_retryable(e.status, oauth):
                    self.log.error("Non-retryable error %s after %d attempts", e.status, attempts)
                    raise
                retry_after = parse_retry_after(e.response) if e.response is not None else None
                if retry_after:
                    with self._episode:
                        self.set_rate_limit_state(retry_after)
                        self._episode_attempts = earlier + attempts
                        self._episode_error = e
                    e.rate_limited = True
                    raise
                error: Exception = e
            except Exception as e:
                error = e
            if first_failure is None:
                first_failure = time.monotonic()
            elapsed = time.monotonic() - first_failure
            if elapsed >= self.max_total_backoff_duration:
                self.log.error(
                    "Max total backoff duration (%ss) exceeded after %d attempts",
                    self.max_total_backoff_duration,
                    attempts,
                )
                raise error
            backoff_attempts += 1
            if backoff_attempts >= self.retries + 1:
                self.log.error(
                    "All %d retries exhausted after %d total attempts", self.retries, attempts
                )
                raise error
            self.stats.add("retried")
            delay = min(next(delays), self.max_total_backoff_duration - elapsed)
            if not self._wait(delay):
                raise ShutdownInterrupted() from error

    def deliver(self, batch: list[Any]) -> bool:
        """Wait out an open rate-limit episode, then ``request(batch)`` once.

        True when delivered; False when the server rate-limited the batch again, which is then
        to be tried again after the wait. Raises ``GiveUp`` when the batch is to be reported,
        and ``ShutdownInterrupted`` when ``pause()`` cut a wait short.
        """
        self._serve_rate_limit()
        cause: Exception
        try:
            self.request(batch)
        except ShutdownInterrupted:
            raise
        except APIError as e:
            if e.rate_limited:
                self.stats.add("retried")
                return False
            retryable = is_retryable(e.status, self.oauth_manager is not None)
            reason, cause = ("retries_exhausted" if retryable else "rejected"), e
        except FatalError as e:
            reason, cause = "fatal", e
        except Exception as e:
            reason, cause = "retries_exhausted", e
        else:
            self.clear_rate_limit_state()
            return True
        self.clear_rate_limit_state()  # the request ended without a rate-limit signal
        raise GiveUp(reason, cause) from cause

    def _serve_rate_limit(self) -> None:
        """Wait until ``rate_limited_until``, or give the batch up when that wait would not
        fit the episode's remaining ``max_rate_limit_duration``: a shortened wait would only
        send inside the window the server asked us to keep clear. Nothing to do outside an
        episode (another caller thread may have just ended it)."""
        with self._episode:
            start, until, error = (
                self.rate_limit_start_time,
                self.rate_limited_until,
                self._episode_error,
            )
            if start is None:
                return
            now = time.monotonic()
            elapsed = now - start
            wait = 0.0 if until is None else until - now
            if elapsed > self.max_rate_limit_duration or wait > (
                self.max_rate_limit_duration - elapsed
            ):
                self.clear_rate_limit_state()
                self.log.error(
                    "Rate limit budget (%ss) cannot accommodate the requested wait; dropping batch",
                    self.max_rate_limit_duration,
                )
                cause = error or Exception("Rate limit duration exceeded, batch dropped")
                raise GiveUp("rate_limit_exceeded", cause)
        if wait > 0 and not self._wait(wait):
            raise ShutdownInterrupted()
        with self._episode:
            if self.rate_limited_until == until:
                self.rate_limited_until = None

    def set_rate_limit_state(self, retry_after: float) -> None:
        """Open an episode, or extend the current one, for ``retry_after`` seconds."""
        with self._episode:
            now = time.monotonic()
            self.rate_limited_until = now + retry_after
            if self.rate_limit_start_time is None:
                self.rate_limit_start_time = now

    def clear_rate_limit_state(self) -> None:
        """End the episode: after a success, a report, or a completed non-rate-limited answer."""
        with self._episode:
            self.rate_limited_until = None
            self.rate_limit_start_time = None
            self._episode_attempts = 0
            self._episode_error = None

    @property
    def running(self) -> bool:
        """False once ``pause()`` was called (upstream's attribute, kept assignable)."""
        return not self._stopping.is_set()

    @running.setter
    def running(self, value: bool) -> None:
        if value:
            self._stopping.clear()
        else:
            self._stopping.set()

    def pause(self) -> None:
        """Stop: a retry wait in progress ends within ``WAIT_SLICE`` seconds."""
        self.running = False

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` in slices; False if ``pause()`` cut the wait short."""
        deadline = time.monotonic() + seconds
        while self.running:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            time.sleep(min(WAIT_SLICE, remaining))
        return False
