"""``Session``: a ``requests.Session`` whose plain POSTs take a short path to urllib3.

``segment_clone.request._session`` is one of these, so everything users do with
analytics-python's ``_session`` still works: patch ``_session.post`` (or
``requests.Session.post``), set ``verify``, ``cert``, ``proxies``, ``headers`` or ``trust_env``,
or mount an adapter. What it saves is requests' per-call machinery, about a millisecond of
Python per batch on a thread that shares the GIL with the application: preparing and merging
the request, reading proxy settings from the environment, hooks, cookies and redirect handling.

The short path is taken only when none of that can change the outcome: a POST with a bytes or
text body and no per-call extras, to a URL served by one of the session's own stock adapters,
with no session auth, params, hooks or cookies. It honours the session's ``verify``, ``cert``,
``proxies``, ``headers`` and ``trust_env`` exactly as requests merges them, raises the
``requests.exceptions`` types, and returns a ``requests.Response``. Anything else goes through
``requests.Session.request`` unchanged, and so does a 307 or 308 answer, which requests then
follows.

Two differences remain: the proxy and CA-bundle environment variables are read the first time
a URL is posted to, not on every request; and a 301, 302 or 303 answer is returned as it is
instead of being followed as a GET that would drop the batch.
"""

from __future__ import annotations

import io
import os
import weakref
from functools import partial
from typing import Any

import requests
import urllib3
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    DEFAULT_CA_BUNDLE_PATH,
    get_auth_from_url,
    get_encoding_from_headers,
    get_environ_proxies,
    select_proxy,
)
from urllib3.exceptions import (
    ConnectTimeoutError,
    NewConnectionError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

POOL_SIZE = 32
"""Keep-alive connections kept per host: the session is shared by every consumer thread of
every client in the process (requests' own adapters keep 10)."""

BODY_KEEPING_REDIRECTS = frozenset({307, 308})
"""Redirects requests follows with the same method and body. A 301, 302 or 303 would make
requests repeat the batch as a GET without its body, and the batch would be lost behind a
success; the short path returns those answers as they are (the caller reports them)."""

_PoolKey = tuple[str | None, Any, Any]
"""(proxy URL, verify, cert): each combination needs its own urllib3 pool manager."""


class Session(requests.Session):
    """``requests.Session`` with a fast path for the SDK's batch POSTs."""

    def __init__(self) -> None:
        super().__init__()
        self._stock_adapters = tuple(self.adapters.values())
        self._managers: dict[_PoolKey, urllib3.PoolManager] = {}
        self._environment: dict[tuple[str, str | None], tuple[dict[str, str], str | None]] = {}
        os.register_at_fork(after_in_child=partial(_close_in_child, weakref.ref(self)))

    def request(
        self,
        method: str | bytes,
        url: str | bytes,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        cookies: Any = None,
        files: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = True,
        proxies: Any = None,
        hooks: Any = None,
        stream: Any = None,
        verify: Any = None,
        cert: Any = None,
        json: Any = None,
    ) -> requests.Response:
        extras = (params, cookies, files, auth, hooks, stream, verify, cert, json)
        if (
            method == "POST"
            and isinstance(url, str)
            and isinstance(data, (bytes, str))
            and all(extra is None for extra in extras)
            and self._plain(url)
        ):
            body = data.encode() if isinstance(data, str) else data
            response = self._post(url, body, headers, timeout, proxies)
            if not (allow_redirects and response.status_code in BODY_KEEPING_REDIRECTS):
                return response
        return super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            cookies=cookies,
            files=files,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
            proxies=proxies,
            hooks=hooks,
            stream=stream,
            verify=verify,
            cert=cert,
            json=json,
        )

    def close(self) -> None:
        super().close()
        managers, self._managers = self._managers, {}
        for manager in managers.values():
            manager.clear()

    def _plain(self, url: str) -> bool:
        """True when requests' machinery could not change what this POST does."""
        if not url.startswith(("http://", "https://")):
            return False  # let requests raise MissingSchema / InvalidSchema
        if self.auth is not None or self.params or self.cookies or any(self.hooks.values()):
            return False
        try:
            return self.get_adapter(url) in self._stock_adapters
        except requests.exceptions.InvalidSchema:
            return False

    def _post(
        self,
        url: str,
        body: bytes,
        headers: Any,
        timeout: Any,
        proxies: dict[str, str] | None,
    ) -> requests.Response:
        env_proxies, env_bundle = self._environment_for(url, proxies)
        # requests' precedence: this call's proxies, then the environment's, then the session's
        merged_proxies = {**(self.proxies or {}), **env_proxies, **(proxies or {})}
        proxy = select_proxy(url, {k: v for k, v in merged_proxies.items() if v is not None})
        verify = self.verify if env_bundle is None else env_bundle
        if (
            url.startswith("https://")
            and verify is not False
            and not os.path.exists(_bundle(verify))
        ):
            raise OSError(
                f"Could not find a suitable TLS CA certificate bundle, invalid path: {verify}"
            )
        merged = CaseInsensitiveDict(self.headers)
        merged.update(headers or {})
        sent = {k: v for k, v in merged.items() if v is not None}
        manager = self._manager(proxy or None, verify, self.cert)
        try:
            raw = manager.urlopen(
                "POST",
                url,
                body=body,
                headers=sent,
                timeout=_timeout(timeout),
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

    def _environment_for(
        self, url: str, proxies: dict[str, str] | None
    ) -> tuple[dict[str, str], str | None]:
        """The proxies and CA bundle the environment gives ``url``, read once per URL."""
        if not self.trust_env:
            return {}, None
        no_proxy = (proxies or {}).get("no_proxy")
        known = self._environment.get((url, no_proxy))
        if known is None:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            known = (get_environ_proxies(url, no_proxy=no_proxy), bundle or None)
            self._environment[(url, no_proxy)] = known
        return known

    def _manager(self, proxy: str | None, verify: Any, cert: Any) -> urllib3.PoolManager:
        key = (proxy, verify, tuple(cert) if isinstance(cert, list) else cert)
        manager = self._managers.get(key)
        if manager is None:
            manager = self._managers.setdefault(key, _new_manager(proxy, verify, cert))
        return manager


def _tls_settings(verify: Any, cert: Any) -> dict[str, Any]:
    """urllib3 TLS arguments for requests' ``verify`` and ``cert`` values."""
    settings: dict[str, Any] = {}
    if verify is False:
        settings["cert_reqs"] = "CERT_NONE"
    else:
        bundle = _bundle(verify)
        settings["cert_reqs"] = "CERT_REQUIRED"
        settings["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = bundle
    if cert:
        cert_file, key_file = (cert, None) if isinstance(cert, str) else cert
        settings["cert_file"] = cert_file
        settings["key_file"] = key_file
    return settings


def _bundle(verify: Any) -> str:
    return DEFAULT_CA_BUNDLE_PATH if verify is True or verify is None else str(verify)


def _new_manager(proxy: str | None, verify: Any, cert: Any) -> urllib3.PoolManager:
    tls = _tls_settings(verify, cert)
    if proxy is None:
        return urllib3.PoolManager(maxsize=POOL_SIZE, **tls)
    user, password = get_auth_from_url(proxy)
    if proxy.lower().startswith("socks"):
        from urllib3.contrib.socks import SOCKSProxyManager  # needs PySocks, as in requests

        return SOCKSProxyManager(
            proxy, username=user or None, password=password or None, maxsize=POOL_SIZE, **tls
        )
    proxy_headers = urllib3.make_headers(proxy_basic_auth=f"{user}:{password}") if user else None
    return urllib3.ProxyManager(proxy, proxy_headers=proxy_headers, maxsize=POOL_SIZE, **tls)


def _timeout(timeout: Any) -> urllib3.Timeout:
    """requests' ``timeout``: seconds for both phases, or a ``(connect, read)`` pair."""
    if isinstance(timeout, urllib3.Timeout):
        return timeout
    if isinstance(timeout, tuple):
        connect, read = timeout
        return urllib3.Timeout(connect=connect, read=read)
    return urllib3.Timeout(connect=timeout, read=timeout)


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


def _close_in_child(ref: weakref.ReferenceType[Session]) -> None:
    """A forked child must not share the parent's keep-alive sockets. Closing them here only
    releases the child's descriptors: the parent's connections stay open."""
    session = ref()
    if session is not None:
        session.close()
