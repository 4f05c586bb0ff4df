"""``Session``: a ``requests.Session`` whose plain POSTs take a short path of their own.

``segment_clone.request._session`` is one of these, so everything users do with
analytics-python's ``_session`` still works: patch ``_session.post`` (or
``requests.Session.post``), set ``verify``, ``cert``, ``proxies``, ``headers`` or ``trust_env``,
or mount an adapter. What it saves is about a millisecond of Python per batch, on a thread that
shares the GIL with the application: requests' per-call preparing and merging, its reading of
proxy settings from the environment, hooks, cookies, and urllib3's general-purpose connection
handling (``keepalive`` does the HTTP instead).

The short path is taken only when none of that can change the outcome: a POST with a bytes or
text body and no per-call extras, to a URL served by one of the session's own stock adapters,
with no session auth, params, hooks or cookies, and no proxy. It honours the session's
``verify``, ``cert``, ``headers`` and ``trust_env`` as requests does, raises the
``requests.exceptions`` types, and returns a ``requests.Response``. Anything else goes through
``requests.Session.request`` unchanged, and so does a 307 or 308 answer, which requests then
follows.

Two differences remain: the proxy and CA-bundle environment variables are read the first time
a URL is posted to, not on every request; and a 301, 302 or 303 answer is returned as it is
instead of being followed as a GET that would drop the batch.
"""

from __future__ import annotations

import copy
import io
import os
import ssl
import weakref
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.structures import CaseInsensitiveDict
from requests.utils import (
    DEFAULT_CA_BUNDLE_PATH,
    get_encoding_from_headers,
    get_environ_proxies,
    select_proxy,
)

from .keepalive import Answer, Origin, Pool

POOL_SIZE = 32
"""Idle keep-alive connections kept per origin: the session is shared by every consumer thread
of every client in the process (requests' own adapters keep 10)."""
BODY_KEEPING_REDIRECTS = frozenset({307, 308})
"""Redirects requests follows with the same method and body. A 301, 302 or 303 would make
requests repeat the batch as a GET without its body, and the batch would be lost behind a
success; the short path returns those answers as they are (the caller reports them)."""


class Session(requests.Session):
    """``requests.Session`` with a fast path for the SDK's batch POSTs."""

    def __init__(self) -> None:
        super().__init__()
        self._stock_adapters = tuple(self.adapters.values())
        self._origins: dict[str, Origin] = {}
        self._pools: dict[tuple[Origin, Any], Pool] = {}
        self._tls: dict[tuple[Any, Any], ssl.SSLContext] = {}
        self._environment: dict[tuple[str, str | None], tuple[dict[str, str], str | None]] = {}
        os.register_at_fork(after_in_child=partial(_reset_in_child, weakref.ref(self)))

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
            if response is not None and not (
                allow_redirects and response.status_code in BODY_KEEPING_REDIRECTS
            ):
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
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            pool.close()

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
    ) -> requests.Response | None:
        """The POST on the short path, or None when a proxy applies (requests' path)."""
        env_proxies, env_bundle = self._environment_for(url, proxies)
        # requests' precedence: this call's proxies, then the environment's, then the session's
        merged_proxies = {**(self.proxies or {}), **env_proxies, **(proxies or {})}
        if merged_proxies and select_proxy(
            url, {k: v for k, v in merged_proxies.items() if v is not None}
        ):
            return None
        origin = self._origin(url)
        tls_key = None
        if origin.tls:
            verify = self.verify if env_bundle is None else env_bundle
            tls_key = (verify, tuple(self.cert) if isinstance(self.cert, list) else self.cert)
        pool = self._pools.get((origin, tls_key))
        if pool is None:
            tls = None if tls_key is None else self._tls_context(*tls_key)
            pool = self._pools.setdefault((origin, tls_key), Pool(origin, tls, POOL_SIZE))
        head = _request_head(origin, self.headers, headers or {}, len(body))
        connect, read = _timeouts(timeout)
        return _response(url, pool.post(head, body, connect, read))

    def _origin(self, url: str) -> Origin:
        origin = self._origins.get(url)
        if origin is None:
            parts = urlsplit(url)
            tls = parts.scheme == "https"
            host = parts.hostname or ""
            port = parts.port or (443 if tls else 80)
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            shown = f"[{host}]" if ":" in host else host
            host_header = shown if port == (443 if tls else 80) else f"{shown}:{port}"
            origin = self._origins[url] = Origin(host, port, tls, target, host_header)
        return origin

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

    def _tls_context(self, verify: Any, cert: Any) -> ssl.SSLContext:
        """The TLS settings of requests' ``verify`` and ``cert``, built once per value."""
        context = self._tls.get((verify, cert))
        if context is None:
            context = self._tls.setdefault((verify, cert), _new_tls_context(verify, cert))
        return context


def _new_tls_context(verify: Any, cert: Any) -> ssl.SSLContext:
    if verify is False:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        bundle = DEFAULT_CA_BUNDLE_PATH if verify is True or verify is None else str(verify)
        if not os.path.exists(bundle):
            raise OSError(
                f"Could not find a suitable TLS CA certificate bundle, invalid path: {bundle}"
            )
        is_dir = os.path.isdir(bundle)
        context = ssl.create_default_context(
            cafile=None if is_dir else bundle, capath=bundle if is_dir else None
        )
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # as urllib3 2
    if cert:
        cert_file, key_file = (cert, None) if isinstance(cert, str) else cert
        context.load_cert_chain(cert_file, key_file)
    return context


def _request_head(origin: Origin, session: Any, request: Any, length: int) -> bytes:
    """Request line and headers: the session's, overridden by the request's case-insensitively,
    as requests merges them; a None value removes a header."""
    fields: dict[str, tuple[str, str]] = {}
    for name, value in (*session.items(), *request.items()):
        text = _text(name)
        fields[text.lower()] = (text, value)
    lines = [f"POST {origin.target} HTTP/1.1", f"Host: {origin.host_header}"]
    for name, value in fields.values():
        if value is None:
            continue
        line = f"{name}: {_text(value)}"
        if "\r" in line or "\n" in line:  # requests refuses these too: they would split it
            raise requests.exceptions.InvalidHeader(f"header {name!r} holds a line break")
        lines.append(line)
    lines.append(f"Content-Length: {length}\r\n\r\n")
    return "\r\n".join(lines).encode("latin-1")


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _timeouts(timeout: Any) -> tuple[float | None, float | None]:
    """requests' ``timeout``: seconds for both phases, or a ``(connect, read)`` pair."""
    if isinstance(timeout, tuple):
        connect, read = timeout
        return connect, read
    return timeout, timeout


def _response(url: str, answer: Answer) -> requests.Response:
    """The answer as the ``requests.Response`` requests would have built."""
    response = requests.Response()
    response.status_code = answer.status
    response.reason = answer.reason
    response.headers = CaseInsensitiveDict(answer.headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response.raw = io.BytesIO(answer.body)
    response.url = url
    return response


def _reset_in_child(ref: weakref.ReferenceType[Session]) -> None:
    session = ref()
    if session is not None:
        session._pools = {}  # a dropped pool's finalizer closes its idle sockets, lock-free
        forget_inherited_connections(session)
        session._stock_adapters = tuple(session.adapters.values())


_left_by_parent: list[requests.adapters.BaseAdapter] = []
"""Adapters a forked child inherited, never closed nor collected there: closing one takes
urllib3's pool locks, which a thread of the parent may have held at the fork."""


def forget_inherited_connections(session: requests.Session) -> None:
    """In a forked child, which must not share its parent's keep-alive sockets: give
    ``session`` new stock adapters instead of closing the old ones under their locks (the child
    keeps its copies of the descriptors; the parent's connections stay open). An adapter the
    application mounted is closed, as it cannot be rebuilt."""
    for prefix, adapter in list(session.adapters.items()):
        if type(adapter) is requests.adapters.HTTPAdapter:
            _left_by_parent.append(adapter)
            session.adapters[prefix] = copy.copy(adapter)  # its settings, a new pool manager
        else:
            adapter.close()
