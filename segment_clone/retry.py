"""The retry policy as pure functions: which statuses to retry and how long to wait.

Kept free of I/O so that it can be tested exhaustively; ``uploader.Uploader`` applies it.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import backoff

RETRYABLE_4XX = frozenset({408, 410, 429, 460})
NON_RETRYABLE_5XX = frozenset({501, 505})
MAX_BACKOFF_SECONDS = 60.0


def is_retryable(status: int, oauth: bool = False) -> bool:
    """408/410/429/460 and 5xx other than 501/505; 511 only when OAuth can fetch a new token."""
    if status == 511:
        return oauth
    if 500 <= status < 600:
        return status not in NON_RETRYABLE_5XX
    return status in RETRYABLE_4XX


def backoff_delays() -> Iterator[float]:
    """Seconds to wait before each counted retry: 0, then 0.5 * 2**(k-2) plus up to 10 % jitter.

    The first retry is immediate because the commonest failure is a stale keep-alive connection;
    later waits double from half a second and are capped at 60 s.
    """
    yield 0.0
    expo = backoff.expo(base=2, factor=0.5, max_value=MAX_BACKOFF_SECONDS)
    next(expo)  # backoff generators are primed with one bare next()
    for base in expo:
        yield min(base + random.uniform(0, 0.1 * base), MAX_BACKOFF_SECONDS)
