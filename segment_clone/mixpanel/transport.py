"""How a Mixpanel request is shaped and how its answer is read; shared by every consumer.

The form (``data``, ``verbose=1``, ``ip=0``), the endpoint table, the auth rules and the
response check live here once, so the synchronous consumers and the background one send
byte-for-byte the same requests and agree on what counts as success.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Optional, Union

import requests
from requests.auth import AuthBase, HTTPBasicAuth

from .credentials import ServiceAccountCredentials
from .errors import MixpanelException

DEFAULT_API_HOST = "api.mixpanel.com"
ENDPOINT_PATHS = {
    "events": "/track",
    "people": "/engage",
    "groups": "/groups",
    "imports": "/import",
}
"""Endpoint names in upstream's order, which is also the order ``flush()`` goes through them."""

Auth = tuple[Optional[str], Optional[str]]
"""``(api_key, api_secret)`` as ``import_data`` and ``merge`` pass it."""
Form = dict[str, Union[str, bytes]]


def endpoint_urls(
    api_host: str,
    events_url: str | None = None,
    people_url: str | None = None,
    groups_url: str | None = None,
    import_url: str | None = None,
) -> dict[str, str]:
    """The URL of each endpoint; an explicit ``*_url`` beats ``api_host``.

    ``api_host`` is a host name (``api-eu.mixpanel.com``, served over https) or, as an
    extension, a base URL with a scheme such as ``http://127.0.0.1:8787``.
    """
    host = api_host.rstrip("/")
    base = host if "://" in host else f"https://{host}"
    explicit = {
        "events": events_url,
        "people": people_url,
        "groups": groups_url,
        "imports": import_url,
    }
    return {name: explicit[name] or base + path for name, path in ENDPOINT_PATHS.items()}


def check_endpoint(endpoint: str, known: Mapping[str, object]) -> None:
    if endpoint not in known:
        raise MixpanelException(
            f'No such endpoint "{endpoint}". Valid endpoints are one of {known.keys()}'
        )


def normalize_auth(api_key: str | Auth | None, api_secret: str | None) -> Auth:
    """Accept both calling styles: ``(api_key, api_secret)`` as one tuple, or two arguments."""
    if isinstance(api_key, tuple):
        return api_key
    return api_key, api_secret


def request_parts(
    endpoint: str, data: str | bytes, auth: Auth, credentials: ServiceAccountCredentials | None
) -> tuple[Form, dict[str, str], AuthBase | None]:
    """The form, query parameters and HTTP auth for one POST.

    Service-account credentials apply to imports only and replace any key or secret; otherwise
    a secret becomes Basic auth (with ``api_key`` in the form when there is one). An
    ``api_key`` without a secret is not sent, as in upstream 5.x: ``/import`` no longer
    accepts it, and the server's 401 says so instead of the key travelling for nothing.
    """
    form: Form = {"data": data, "verbose": "1", "ip": "0"}
    if credentials is not None and endpoint == "imports":
        return form, {"project_id": credentials.project_id}, credentials.to_http_basic_auth()
    api_key, api_secret = auth
    if api_secret is None:
        return form, {}, None
    if api_key:
        form["api_key"] = api_key
    return form, {}, HTTPBasicAuth(api_secret, "")


def response_error(response: requests.Response) -> str | None:
    """None when the body says ``status: 1``; otherwise upstream's error text.

    Unlike upstream, a body without an ``error`` key or a JSON value that is not an object is
    reported as an error too, instead of escaping as ``KeyError`` or ``TypeError``.
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return f"Cannot interpret Mixpanel server response: {response.text}"
    if body.get("status") == 1:
        return None
    return f"Mixpanel error: {body.get('error', response.text)}"


__all__ = [
    "DEFAULT_API_HOST",
    "ENDPOINT_PATHS",
    "Auth",
    "check_endpoint",
    "endpoint_urls",
    "normalize_auth",
    "request_parts",
    "response_error",
]
