"""OAuth 2 client-credentials tokens, fetched with RS256 JWT client assertions.

The shape is upstream's: ``get_token()`` starts a ``threading.Timer`` (``thread``) that runs
``_poller_loop``, one fetch cycle that schedules the next, and requests go through this module's
own ``_session``. The behaviour is fixed: a token is refreshed at half of ``expires_in`` while
the old one stays in use; concurrent callers share one fetch; 5xx and network errors back off
exponentially (capped) instead of polling every 25 ms; 429 waits ``Retry-After`` or
``X-RateLimit-Reset`` (a blocking ``time.sleep``, as upstream, so that impatient callers cannot
cut a rate-limit wait short); clock skew is corrected from the server's ``Date`` header.

A permanent failure (an unreadable key, or 400/401/403/415 from the token endpoint) becomes a
``FatalError`` kept in ``error`` that every later ``get_token()`` raises, so batches are
reported through ``on_error`` at once instead of waiting. Transient failures make
``get_token()`` raise ``TokenUnavailable`` after at most ``timeout`` seconds, which the consumer
retries with its own backoff. Tokens and keys are never logged and never appear in a repr.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from email.utils import parsedate_to_datetime

import requests

from .errors import FatalError
from .request import MAX_RETRY_AFTER_SECONDS, parse_retry_after
from .retry import backoff_delays
from .transport import forget_inherited_connections
from .utils import remove_trailing_slash

DEFAULT_AUTH_SERVER = "https://oauth2.segment.io"
DEFAULT_SCOPE = "tracking_api:write"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 60
DEFAULT_EXPIRES_IN = 120.0
RATE_LIMIT_DEFAULT_DELAY = 5.0
FATAL_STATUSES = frozenset({400, 401, 403, 415})
SKEW_ERRORS = frozenset({"Token is expired", "Token used before issued"})

log = logging.getLogger("segment")

_session = requests.Session()
"""The token endpoint's session (upstream's seam); resolved at call time."""


os.register_at_fork(after_in_child=lambda: forget_inherited_connections(_session))


class TokenUnavailable(Exception):
    """No token yet; the token endpoint is failing or slow. Retryable by the caller."""


class _RetryLater(Exception):
    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class OauthManager:
    """Fetches and refreshes an access token on a chain of timer threads.

    ``token``, ``error``, ``retry_count``, ``clock_skew``, ``thread`` and ``token_mutex`` are
    upstream's attributes: the current token, the permanent error, consecutive failed fetches,
    the seconds the local clock is ahead of the server's, the timer of the next (or current)
    fetch, and the lock that guards them.
    """

    def __init__(
        self,
        client_id: str,
        client_key: str,
        key_id: str,
        auth_server: str = DEFAULT_AUTH_SERVER,
        scope: str = DEFAULT_SCOPE,
        timeout: float = 15,
        max_retries: int = 3,
    ) -> None:
        self.client_id = client_id
        self.client_key = client_key
        self.key_id = key_id
        self.auth_server = auth_server
        self.scope = scope
        self.timeout = timeout
        self.max_retries = max_retries
        self.clock_skew = 0
        self.reset_after_fork()

    def reset_after_fork(self) -> None:
        """Fresh locks and token state: at construction, and in a forked child, where the
        parent's timer thread does not exist and its lock may have been held."""
        self.token_mutex = threading.Lock()
        self._changed = threading.Condition(self.token_mutex)
        self._stopping = threading.Event()
        self.thread: threading.Timer | None = None
        self.token: str | None = None
        self.error: FatalError | None = None
        self.retry_count = 0
        self._expires_at = 0.0
        self._generation = 0
        self._fetching = False
        self._delays = backoff_delays()
        self._last_failure = "no attempt yet"

    def __repr__(self) -> str:
        return (
            f"OauthManager(client_id={self.client_id!r}, key_id={self.key_id!r}, "
            f"auth_server={self.auth_server!r}, scope={self.scope!r})"
        )

    def get_token(self) -> str:
        """A valid access token, waiting up to ``timeout`` seconds for the first one."""
        with self.token_mutex:
            if self.token is None or time.monotonic() >= self._expires_at:
                self.token = None
                self._demand()
                self._changed.wait_for(self._settled, self.timeout)
            if self.token is not None:
                return self.token
            if self.error is not None:
                raise self.error
            raise TokenUnavailable(f"no OAuth access token yet: {self._last_failure}")

    def _settled(self) -> bool:
        return (
            self.token is not None
            or self.error is not None
            or self.retry_count >= self.max_retries
            or self._stopping.is_set()
        )

    def clear_token(self) -> None:
        """Forget the token (the API refused it); the next ``get_token`` fetches a new one."""
        with self.token_mutex:
            self.token = None
            self.retry_count = 0

    def stop(self) -> None:
        """Cancel the pending fetch; a later ``get_token`` starts again."""
        with self.token_mutex:
            self._stopping.set()
            self._generation += 1  # a timer already firing sees it is stale
            if self.thread is not None:
                self.thread.cancel()
            self._changed.notify_all()

    def _demand(self) -> None:
        """Under the lock, when a caller needs a token: fetch now, unless a fetch is running,
        the failure is permanent, or a failure streak's backoff is in progress (many waiting
        consumers must not turn it into a tight poll of a failing endpoint)."""
        if self.error is not None or self._fetching:
            return
        pending = self.thread is not None and self.thread.is_alive()
        if pending and self.retry_count and not self._stopping.is_set():
            return
        self._stopping.clear()
        self._schedule(0.0)

    def _schedule(self, delay: float) -> None:
        """Under the lock: replace the pending timer with one that fetches after ``delay``."""
        if self.thread is not None:
            self.thread.cancel()
        self._generation += 1
        timer = threading.Timer(delay, self._fire, args=(self._generation,))
        timer.daemon = True
        timer.name = "segment-clone-oauth"
        self.thread = timer
        try:
            timer.start()
        except RuntimeError as e:  # "can't start new thread", e.g. at interpreter exit
            self._last_failure = f"could not start the token thread: {e}"
            self.retry_count = self.max_retries
            self._changed.notify_all()

    def _fire(self, generation: int) -> None:
        with self.token_mutex:
            if generation != self._generation or self._stopping.is_set():
                return
            self._fetching = True  # before the lock is released: no caller may start another
        self._poller_loop()

    def _poller_loop(self) -> None:
        """One fetch cycle: request a token, record the outcome, schedule the next cycle."""
        with self.token_mutex:
            self._fetching = True
        delay = self._refresh()
        with self.token_mutex:
            self._fetching = False
            if delay is not None and not self._stopping.is_set():
                self._schedule(delay)

    def _refresh(self) -> float | None:
        """One fetch; returns seconds until the next, or None to stop for good."""
        try:
            token, expires_in = self._fetch()
        except FatalError as e:
            log.error("OAuth token request failed permanently: %s", e)
            self._settle(fatal=e)
            return None
        except _RetryLater as e:
            self._settle(failure=str(e))
            if e.delay is None:
                return float(next(self._delays))
            time.sleep(e.delay)
            return 0.0
        except Exception as e:  # network errors and anything unexpected: retry with backoff
            self._settle(failure=f"{type(e).__name__}: {e}")
            return float(next(self._delays))
        self._settle(token=token, expires_in=expires_in)
        return expires_in / 2

    def _settle(
        self,
        token: str | None = None,
        expires_in: float = 0.0,
        fatal: FatalError | None = None,
        failure: str | None = None,
    ) -> None:
        with self.token_mutex:
            if token is not None:
                self.token = token
                self._expires_at = time.monotonic() + expires_in
                self.retry_count = 0
                self._delays = backoff_delays()
            if fatal is not None:
                self.error = fatal
            if failure is not None:
                self.retry_count += 1
                self._last_failure = failure
                log.warning(
                    "OAuth token request failed (%d in a row): %s", self.retry_count, failure
                )
            self._changed.notify_all()

    def _fetch(self) -> tuple[str, float]:
        res = _session.post(
            remove_trailing_slash(self.auth_server) + "/token",
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self._assertion(),
                "scope": self.scope,
            },
            timeout=self.timeout,
        )
        self._update_skew(res.headers.get("Date"))
        status = res.status_code
        if status == 200:
            return self._parse_token(res)
        if status == 429:
            delay = parse_retry_after(res) or _reset_header(res) or RATE_LIMIT_DEFAULT_DELAY
            raise _RetryLater(f"token endpoint rate limited (429), retrying in {delay}s", delay)
        error, description = _error_fields(res)
        if status in FATAL_STATUSES:
            if error == "invalid_request" and description in SKEW_ERRORS:
                raise _RetryLater(f"token endpoint: {description}; clock skew corrected")
            detail = f"{error}: {description}" if description else error
            raise FatalError(f"token endpoint refused the client ({status}): {detail}")
        raise _RetryLater(f"token endpoint answered {status}: {error}")

    def _assertion(self) -> str:
        now = int(time.time()) - self.clock_skew
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": remove_trailing_slash(self.auth_server),
            "iat": now - 5,
            "exp": now - 5 + ASSERTION_LIFETIME,
            "jti": str(uuid.uuid4()),
        }
        import jwt  # deferred: PyJWT and cryptography cost ~60 ms of import time

        try:
            return jwt.encode(
                claims, self.client_key, algorithm="RS256", headers={"kid": self.key_id}
            )
        except (ValueError, TypeError, jwt.PyJWTError) as e:
            raise FatalError(f"cannot sign the client assertion: {type(e).__name__}") from None

    def _update_skew(self, date_header: str | None) -> None:
        if not date_header:
            return
        try:
            server_time = parsedate_to_datetime(date_header).timestamp()
        except (TypeError, ValueError, IndexError):
            return
        self.clock_skew = int(time.time() - server_time)

    @staticmethod
    def _parse_token(res: requests.Response) -> tuple[str, float]:
        try:
            data = res.json()
            token = data["access_token"]
        except (ValueError, KeyError, TypeError):
            raise _RetryLater("token endpoint answered 200 without an access_token") from None
        if not isinstance(token, str) or not token:
            raise _RetryLater("token endpoint answered 200 without an access_token")
        try:
            expires_in = float(data.get("expires_in", DEFAULT_EXPIRES_IN))
        except (TypeError, ValueError):
            expires_in = DEFAULT_EXPIRES_IN
        return token, max(expires_in, 1.0)


def _reset_header(res: requests.Response) -> float | None:
    """``X-RateLimit-Reset`` as a delay; accepts both a delay and an epoch time."""
    try:
        value = float(res.headers["X-RateLimit-Reset"])
    except (KeyError, ValueError):
        return None
    if value > 1e9:
        value -= time.time()
    return min(max(value, 0.0), MAX_RETRY_AFTER_SECONDS) or None


def _error_fields(res: requests.Response) -> tuple[str, str]:
    try:
        body = res.json()
        return str(body.get("error", "unknown")), str(body.get("error_description", ""))
    except (ValueError, AttributeError):
        return "unknown", ""
