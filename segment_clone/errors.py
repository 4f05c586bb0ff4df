"""Exceptions shared by the request, consumer and client layers.

The names and string forms of ``APIError``, ``FatalError`` and ``ShutdownInterrupted`` match
``segment.analytics`` so that ``except`` clauses and log parsers keep working after migration.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import requests


class APIError(Exception):
    """The tracking API answered with a non-2xx status."""

    rate_limited = False
    """Set on an error whose ``Retry-After`` opened a rate-limit episode, as upstream does:
    the batch is to be tried again after the wait, not reported."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        response: requests.Response | None = None,
    ) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.response = response

    def __str__(self) -> str:
        return f"[Segment] {self.code}: {self.message} ({self.status})"


class FatalError(Exception):
    """A failure that no retry can fix (for example an unusable OAuth key)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"[Segment] {self.message}"


class ShutdownInterrupted(Exception):
    """A backoff or rate-limit wait was cut short because the consumer is stopping."""


class MessageDropped(Exception):
    """Passed to ``on_error`` when messages are given up for a reason other than an HTTP error.

    ``reason`` is the same key that ``Client.stats()["dropped"]`` counts under.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"[Segment] {self.reason}: {self.detail}"


__all__ = ["APIError", "FatalError", "MessageDropped", "ShutdownInterrupted"]
