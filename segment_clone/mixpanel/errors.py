"""Exceptions of the Mixpanel facade.

``MixpanelException`` keeps upstream's name and bare behaviour so that ``except`` clauses keep
working; ``MixpanelAPIError`` is what the background consumer reports, carrying the HTTP status
and response that the shared retry policy needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import APIError

if TYPE_CHECKING:
    import requests


class MixpanelException(Exception):
    """Raised for unknown endpoints, transport failures and error answers from Mixpanel.

    ``BufferedConsumer.flush`` sets ``message`` (the failing batch as JSON text) and
    ``endpoint`` on the exception it raises.
    """

    message: str
    endpoint: str


class MixpanelAPIError(APIError, MixpanelException):
    """A batch the server did not accept: a non-2xx status or a body without ``status: 1``."""

    def __init__(
        self, status: int, message: str, response: requests.Response | None, endpoint: str
    ) -> None:
        super().__init__(status, "mixpanel_error", message, response)
        self.endpoint = endpoint

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status}, endpoint {self.endpoint})"


__all__ = ["MixpanelAPIError", "MixpanelException"]
