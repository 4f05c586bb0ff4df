"""HTTP for the consumers: urllib3 pools with the semantics of ``requests``.

``requests.Session.post`` spends about a millisecond of Python per call (preparing the request,
merging session and environment settings, hooks, redirect and cookie handling) on work a batch
POST does not need, and a consumer thread shares the GIL with the application. A ``Transport``
goes to urllib3 directly and keeps what users rely on from ``requests``: a requests-style
``proxies`` dict plus ``HTTP(S)_PROXY``/``NO_PROXY`` (read once), certificate verification
against the same CA bundle (or ``REQUESTS_CA_BUNDLE``), ``requests`` exception types for
network failures, and a ``requests.Response`` for the caller.
"""

from __future__ import annotations

import io
import os
from typing import Any

import requests
import urllib3
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    DEFAULT_CA_BUNDLE_PATH,
    get_auth_from_url,
    get_encoding_from_headers,
    get_environ_proxies,
)
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

POOL_SIZE = 4
"""Connections kept per host: one per consumer thread, a few for ``sync_mode`` callers."""


class Transport:
    """Keep-alive connection pools for one consumer (or one ``sync_mode`` client)."""

    def __init__(self) -> None:
        bundle = (
            os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or DEFAULT_CA_BUNDLE_PATH
        )
        where = "ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"
        self._tls: dict[str, Any] = {"cert_reqs": "CERT_REQUIRED", where: bundle}
        self._managers: dict[str | None, urllib3.PoolManager] = {}
        self._environ: dict[str, dict[str, str]] = {}

    def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """POST ``body``; network failures raise the ``requests.exceptions`` types."""
        manager = self._manager(self._proxy_for(url, proxies))
        try:
            raw = manager.urlopen(
                "POST",
                url,
                body=body,
                headers=headers,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                retries=False,
                redirect=False,
            )
        except NewConnectionError as e:
            raise requests.ConnectionError(e) from e
        except ConnectTimeoutError as e:
            raise requests.ConnectTimeout(e) from e
        except ReadTimeoutError as e:
            raise requests.ReadTimeout(e) from e
        except ProxyError as e:
            raise requests.exceptions.ProxyError(e) from e
        except SSLError as e:
            raise requests.exceptions.SSLError(e) from e
        except urllib3.exceptions.HTTPError as e:
            raise requests.ConnectionError(e) from e
        return _response(url, raw)

    def _proxy_for(self, url: str, proxies: dict[str, str] | None) -> str | None:
        environ = self._environ.get(url)
        if environ is None:
            environ = self._environ[url] = get_environ_proxies(url)
        chosen = requests.utils.select_proxy(url, {**environ, **(proxies or {})})
        return chosen or None

    def _manager(self, proxy: str | None) -> urllib3.PoolManager:
        manager = self._managers.get(proxy)
        if manager is None:
            manager = self._managers[proxy] = self._new_manager(proxy)
        return manager

    def _new_manager(self, proxy: str | None) -> urllib3.PoolManager:
        if proxy is None:
            return urllib3.PoolManager(maxsize=POOL_SIZE, **self._tls)
        if proxy.lower().startswith("socks"):
            from urllib3.contrib.socks import SOCKSProxyManager  # needs PySocks, as in requests

            user, password = get_auth_from_url(proxy)
            return SOCKSProxyManager(
                proxy, username=user or None, password=password or None, **self._tls
            )
        user, password = get_auth_from_url(proxy)
        proxy_headers = (
            urllib3.make_headers(proxy_basic_auth=f"{user}:{password}") if user else None
        )
        return urllib3.ProxyManager(
            proxy, proxy_headers=proxy_headers, maxsize=POOL_SIZE, **self._tls
        )


def _response(url: str, raw: urllib3.BaseHTTPResponse) -> requests.Response:
    """The urllib3 answer (already read, its connection back in the pool) as requests'."""
    response = requests.Response()
    response.status_code = raw.status
    response.reason = raw.reason or ""
    response.headers = CaseInsensitiveDict(raw.headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response.raw = io.BytesIO(raw.data)
    response.url = url
    return response
