"""``Consumer``: one synchronous HTTP request per ``send``, as upstream.

Retries are urllib3's, mounted on the session exactly as upstream configures them (every 5xx,
POST allowed, ``Retry-After`` honoured). Upstream mounts them for ``https://`` only; they are
mounted for ``http://`` too, so a plain-http base URL (a proxy, a local collector) gets the
same retries instead of silently none.
"""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .credentials import ServiceAccountCredentials
from .errors import MixpanelException
from .transport import (
    DEFAULT_API_HOST,
    Auth,
    check_endpoint,
    endpoint_urls,
    normalize_auth,
    request_parts,
    response_error,
)


class Consumer:
    """Sends each message to Mixpanel on the caller's thread and raises on failure.

    ``request_timeout=None`` means no timeout, as upstream; pass one (or use
    ``AsyncBufferedConsumer``) so that an unreachable server cannot hang the caller.
    """

    def __init__(
        self,
        events_url: str | None = None,
        people_url: str | None = None,
        import_url: str | None = None,
        request_timeout: float | None = None,
        groups_url: str | None = None,
        api_host: str = DEFAULT_API_HOST,
        retry_limit: int = 4,
        retry_backoff_factor: float = 0.25,
        verify_cert: bool = True,
        credentials: ServiceAccountCredentials | None = None,
    ) -> None:
        self._endpoints = endpoint_urls(api_host, events_url, people_url, groups_url, import_url)
        self._request_timeout = request_timeout
        self._verify_cert = verify_cert
        self._credentials = credentials
        retry = Retry(
            total=retry_limit,
            backoff_factor=retry_backoff_factor,
            status_forcelist=set(range(500, 600)),
            allowed_methods={"POST"},
        )
        adapter = HTTPAdapter(max_retries=retry)
        self._session = requests.Session()
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    def send(
        self,
        endpoint: str,
        json_message: str,
        api_key: str | Auth | None = None,
        api_secret: str | None = None,
    ) -> None:
        """POST ``json_message`` (one object or a ``[...]`` batch) to ``endpoint``.

        ``api_key`` may be the ``(api_key, api_secret)`` tuple that ``import_data``, ``merge``
        and ``BufferedConsumer`` pass. Raises ``MixpanelException`` for an unknown endpoint,
        a transport failure (after the retries) or an answer without ``status: 1``.
        """
        check_endpoint(endpoint, self._endpoints)
        self._write_request(endpoint, json_message, normalize_auth(api_key, api_secret))

    def _write_request(self, endpoint: str, json_message: str, auth: Auth) -> bool:
        form, params, http_auth = request_parts(endpoint, json_message, auth, self._credentials)
        try:
            response = self._session.post(
                self._endpoints[endpoint],
                params=params,
                data=form,
                auth=http_auth,
                timeout=self._request_timeout,
                verify=self._verify_cert,
            )
        except Exception as e:
            raise MixpanelException(e) from e
        error = response_error(response)
        if error is not None:
            raise MixpanelException(error)
        return True


__all__ = ["Consumer"]
