"""Service-account credentials for ``/import`` (importable as ``mixpanel.credentials``)."""

from __future__ import annotations

from typing import Any

from requests.auth import HTTPBasicAuth


class ServiceAccountCredentials:
    """A service account's username and secret plus the project they import into.

    Values are validated and stripped up front so that a typo fails at start-up rather than
    as a 401 on the first import; the secret never appears in ``repr``.
    """

    def __init__(self, username: str, secret: str, project_id: str) -> None:
        self.username = _field("username", username)
        self.secret = _field("secret", secret)
        self.project_id = _field("project_id", project_id)

    def to_http_basic_auth(self) -> HTTPBasicAuth:
        return HTTPBasicAuth(self.username, self.secret)

    def __repr__(self) -> str:
        return (
            f"ServiceAccountCredentials(username={self.username!r}, "
            f"project_id={self.project_id!r}, secret='***')"
        )


def _field(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"Service account {name} must be a string")
    stripped = value.strip()
    if not stripped:
        raise ValueError(f"Service account {name} cannot be empty")
    return stripped


__all__ = ["ServiceAccountCredentials"]
