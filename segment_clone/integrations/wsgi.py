"""WSGI middleware (Flask, Bottle, Pyramid, any WSGI app): a scope per request.

``app.wsgi_app = SegmentMiddleware(app.wsgi_app)`` for Flask. Each request runs in a context of
its own (``contextvars.copy_context``), and so does each step of a streamed response, so a
generator that tracks while it streams still sees the request's scope.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Iterator
from typing import Any, Callable

from ..scopes import Resolver, Scope
from .http import HEADERS, TrustedProxies, UserIdOf, decode_latin1, request_scope

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
log = logging.getLogger("segment")
_ENVIRON_KEYS = {name: "HTTP_" + name.upper().replace("-", "_") for name in HEADERS}


class SegmentMiddleware:
    """``SegmentMiddleware(app)``. ``trusted_proxies``: addresses or networks whose
    ``X-Forwarded-For`` is believed. ``user_id``: called with the WSGI environ, returns the
    user id or None, when a message first needs it."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        trusted_proxies: Iterable[str] = (),
        user_id: UserIdOf | None = None,
    ) -> None:
        self.app = app
        self.trusted = TrustedProxies(trusted_proxies)
        self.user_id = user_id

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        context = contextvars.copy_context()
        body = context.run(self._call, environ, start_response)
        return _InContext(context, body)

    def _call(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        user_id = self.user_id
        resolver = None if user_id is None else lambda: user_id(environ)
        environ_scope(environ, self.trusted, resolver).activate()
        return self.app(environ, start_response)


def environ_scope(
    environ: Environ,
    trusted: TrustedProxies,
    resolver: Resolver | None,
    scheme: str | None = None,
) -> Scope:
    """The scope of a request described by a WSGI environ (or Django's ``request.META``)."""
    try:
        facts = _environ_facts(environ, scheme)
    except Exception:  # a malformed environ gets no context; it never fails the request
        log.warning("could not read the WSGI environ; the request's events go without context")
        facts = {}
    return request_scope(trusted=trusted, user_id=resolver, **facts)


def _environ_facts(environ: Environ, scheme: str | None) -> dict[str, Any]:
    headers = {}
    for name, key in _ENVIRON_KEYS.items():
        value = environ.get(key)
        if value:
            headers[name] = decode_latin1(str(value))
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")  # gunicorn, uWSGI: as sent
    if raw:
        path = str(raw).split("?", 1)[0]
    else:
        path = decode_latin1(f"{environ.get('SCRIPT_NAME', '')}{environ.get('PATH_INFO', '')}")
    port = str(environ.get("SERVER_PORT", ""))
    server = str(environ.get("SERVER_NAME", "")) or None
    if server and port not in ("", "80", "443"):
        server = f"{server}:{port}"
    return {
        "peer": environ.get("REMOTE_ADDR"),
        "headers": headers,
        "scheme": scheme or str(environ.get("wsgi.url_scheme", "http")),
        "server": server,
        "path": path,
        "query": str(environ.get("QUERY_STRING", "")),
    }


class _InContext:
    """The response body, iterated and closed in the request's context."""

    def __init__(self, context: contextvars.Context, body: Iterable[bytes]) -> None:
        self._context = context
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        chunks = self._context.run(iter, self._body)
        while True:
            try:
                yield self._context.run(next, chunks)
            except StopIteration:
                return

    def close(self) -> None:
        close = getattr(self._body, "close", None)
        if close is not None:
            self._context.run(close)
