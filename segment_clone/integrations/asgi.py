"""ASGI middleware (Starlette, FastAPI, any ASGI app): a scope per request, and a flush at the
server's shutdown.

uvicorn re-raises the stop signal after its own graceful shutdown, so the process dies by the
signal and no exit hook runs: what is still queued is lost. The lifespan protocol is the one
moment the server waits for the application, so the flush happens there, bounded by the
client's ``shutdown_timeout``: once when ``lifespan.shutdown`` arrives, and again when the
application reports ``lifespan.shutdown.complete`` (for what its own shutdown handlers sent).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any, Callable

from ..scopes import Scope
from ..serverless import aflush_quietly, client_or_default
from .http import HEADERS, TrustedProxies, UserIdOf, request_scope

if TYPE_CHECKING:
    from ..client import Client

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]
log = logging.getLogger("segment")
_WANTED = frozenset(name.encode() for name in HEADERS)
_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


class SegmentMiddleware:
    """``app = SegmentMiddleware(app)``. ``trusted_proxies``: addresses or networks whose
    ``X-Forwarded-For`` is believed. ``user_id``: called with the ASGI scope, returns the
    user id or None. ``client``: the client flushed at shutdown (default: the module's)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        trusted_proxies: Iterable[str] = (),
        user_id: UserIdOf | None = None,
        client: Client | None = None,
    ) -> None:
        self.app = app
        self.trusted = TrustedProxies(trusted_proxies)
        self.user_id = user_id
        self.client = client

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
        elif kind in ("http", "websocket"):
            with self._request_scope(scope):
                await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    def _request_scope(self, scope: MutableMapping[str, Any]) -> Scope:
        try:
            facts = _request_facts(scope)
        except Exception:  # a malformed scope gets no context; it never fails the request
            log.warning("could not read the ASGI scope; the request's events go without context")
            facts = {}
        return request_scope(trusted=self.trusted, user_id=self._resolver(scope), **facts)

    def _resolver(self, scope: MutableMapping[str, Any]) -> Callable[[], Any] | None:
        user_id = self.user_id
        return None if user_id is None else lambda: user_id(scope)

    # -- lifespan -------------------------------------------------------------------------

    async def _lifespan(
        self, scope: MutableMapping[str, Any], receive: Receive, send: Send
    ) -> None:
        received = False
        shutdown_at: list[float] = []

        async def receive_then_flush() -> Message:
            nonlocal received
            message = await receive()
            received = True
            if message["type"] == "lifespan.shutdown":
                shutdown_at.append(time.monotonic())
                await self._flush(shutdown_at[0])
            return message

        async def flush_then_send(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete" and shutdown_at:
                await self._flush(shutdown_at[0])
            await send(message)

        try:
            await self.app(scope, receive_then_flush, flush_then_send)
        except Exception:
            if received:
                raise
        else:
            if received:
                return
        # The application does not speak lifespan (it raised, or returned without listening):
        # speak it for it, so that the server still waits for the flush.
        await self._serve_lifespan(receive, send)

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._flush(time.monotonic())
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _flush(self, shutdown_at: float) -> None:
        """Flush the client within its ``shutdown_timeout``, counted from ``shutdown_at``."""
        client = client_or_default(self.client)
        if client is not None:
            remaining = client.shutdown_timeout - (time.monotonic() - shutdown_at)
            await aflush_quietly(client, max(0.0, remaining))


def _request_facts(scope: MutableMapping[str, Any]) -> dict[str, Any]:
    headers: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        name = bytes(name).lower()
        if name in _WANTED:
            key = name.decode()
            text = bytes(value).decode("utf-8", "replace")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
    server = scope.get("server")
    client = scope.get("client")
    raw_path = scope.get("raw_path")
    return {
        "peer": str(client[0]) if client else None,
        "headers": headers,
        "scheme": _SCHEMES.get(scope.get("scheme") or "http", "http"),
        "server": None if not server else _host(str(server[0]), server[1]),
        "path": bytes(raw_path).decode("latin-1") if raw_path else str(scope.get("path", "/")),
        "query": bytes(scope.get("query_string") or b"").decode("latin-1"),
    }


def _host(name: str, port: Any) -> str:
    return name if port in (80, 443, None) else f"{name}:{port}"
