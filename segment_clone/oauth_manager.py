"""OAuth 2 client-credentials tokens, fetched with RS256 JWT client assertions.

One daemon thread per manager keeps a token fresh: it fetches on first demand, refreshes at
half of ``expires_in`` while the old token stays in use, honours ``Retry-After`` on 429, backs
off exponentially (capped) on 5xx and network errors, and corrects for clock skew using the
server's ``Date`` header. Consumers call ``get_token()``; concurrent callers share one fetch.

A permanent failure (an unreadable key, or 400/401/403 from the token endpoint) becomes a
``FatalError`` that every later ``get_token()`` raises, so batches are reported through
``on_error`` at once instead of waiting. Transient failures make ``get_token()`` raise
``TokenUnavailable`` after at most ``timeout`` seconds, which the consumer retries with its
own backoff. Tokens and keys are never logged and never appear in a repr.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from email.utils import parsedate_to_datetime

import requests

from .errors import FatalError
from .request import MAX_RETRY_AFTER_SECONDS, parse_retry_after
from .retry import backoff_delays
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


class TokenUnavailable(Exception):
    """No token yet; the token endpoint is failing or slow. Retryable by the caller."""


class _RetryLater(Exception):
    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class OauthManager:
    """Fetches and refreshes an access token on a background thread."""

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
        self._client_key = client_key
        self.key_id = key_id
        self.auth_server = remove_trailing_slash(auth_server)
        self.scope = scope
        self.timeout = timeout
        self.max_retries = max_retries
        self.clock_skew = 0
        self.reset_after_fork()

    def reset_after_fork(self) -> None:
        """Fresh session, locks and token state: at construction, and in a forked child,
        where the parent's thread does not exist and its lock may have been held."""
        self.session = requests.Session()
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._fatal: FatalError | None = None
        self._failures = 0
        self._fetching = False
        self._last_failure = "no attempt yet"

    def __repr__(self) -> str:
        return (
            f"OauthManager(client_id={self.client_id!r}, key_id={self.key_id!r}, "
            f"auth_server={self.auth_server!r}, scope={self.scope!r})"
        )

    def get_token(self) -> str:
        """A valid access token, waiting up to ``timeout`` seconds for the first one."""
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._token = None
                self._demand()
                self._changed.wait_for(self._settled, self.timeout)
            if self._token is not None:
                return self._token
            if self._fatal is not None:
                raise self._fatal
            raise TokenUnavailable(f"no OAuth access token yet: {self._last_failure}")

    def _settled(self) -> bool:
        return (
            self._token is not None
            or self._fatal is not None
            or self._failures >= self.max_retries
            or self._stopping.is_set()
        )

    def clear_token(self) -> None:
        """Forget the token (the API refused it); the next ``get_token`` fetches a new one."""
        with self._lock:
            self._token = None
            self._failures = 0
        self._wake.set()

    def stop(self) -> None:
        """Stop the refresh thread; a later ``get_token`` starts a new one."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            self._changed.notify_all()

    def _demand(self) -> None:
        """Called under the lock when a caller needs a token: start or nudge the thread.

        During a failure streak the thread keeps its own backoff, so that many waiting
        consumers cannot turn it into a tight poll of a failing token endpoint.
        """
        if self._fatal is not None:
            return
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._failures = 0
            self._fetching = True  # a new thread fetches at once
            self._thread = threading.Thread(
                target=self._run, name="segment-clone-oauth", daemon=True
            )
            self._thread.start()
        elif not self._fetching and not self._failures:
            self._fetching = True
            self._wake.set()

    def _run(self) -> None:
        delays = backoff_delays()
        wait: float | None = 0.0
        while True:
            if wait:
                self._wake.wait(wait)
            self._wake.clear()
            if self._stopping.is_set():
                return
            with self._lock:
                self._fetching = True
            wait = self._refresh(delays)
            if wait is None:
                return
            if not self._failures:
                delays = backoff_delays()

    def _refresh(self, delays: Iterator[float]) -> float | None:
        """One fetch; returns seconds until the next, or None to stop for good."""
        try:
            token, expires_in = self._fetch()
        except FatalError as e:
            log.error("OAuth token request failed permanently: %s", e)
            self._settle(fatal=e)
            return None
        except _RetryLater as e:
            self._settle(failure=str(e))
            return e.delay if e.delay is not None else float(next(delays))
        except Exception as e:  # network errors and anything unexpected: retry with backoff
            self._settle(failure=f"{type(e).__name__}: {e}")
            return float(next(delays))
        self._settle(token=token, expires_in=expires_in)
        return expires_in / 2

    def _settle(
        self,
        token: str | None = None,
        expires_in: float = 0.0,
        fatal: FatalError | None = None,
        failure: str | None = None,
    ) -> None:
        with self._lock:
            self._fetching = False
            if token is not None:
                self._token = token
                self._expires_at = time.monotonic() + expires_in
                self._failures = 0
            if fatal is not None:
                self._fatal = fatal
            if failure is not None:
                self._failures += 1
                self._last_failure = failure
                log.warning("OAuth token request failed (%d in a row): %s", self._failures, failure)
            self._changed.notify_all()

    def _fetch(self) -> tuple[str, float]:
        res = self.session.post(
            self.auth_server + "/token",
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
            "aud": self.auth_server,
            "iat": now - 5,
            "exp": now - 5 + ASSERTION_LIFETIME,
            "jti": str(uuid.uuid4()),
        }
        import jwt  # deferred: PyJWT and cryptography cost ~60 ms of import time

        try:
            return jwt.encode(
                claims, self._client_key, algorithm="RS256", headers={"kid": self.key_id}
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
