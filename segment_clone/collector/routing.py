"""The collector's request/response types and its route table.

Every endpoint is one ``Route`` in a table keyed by path, so another API (Mixpanel ingestion,
an OAuth token endpoint) is added by appending routes, without touching the HTTP handler.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol
from urllib.parse import parse_qs

import orjson


class HTTPError(Exception):
    """Answered as ``status`` with the JSON body ``{"code": code, "message": message}``."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        close: bool = False,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message
        self.close = close
        """True when the request body was not read, so the connection cannot be reused."""
        self.details = details or {}
        """More fields for the error body (a tracking plan's ``violations``)."""


class Headers(Protocol):
    """Case-insensitive header lookup (``http.server``'s ``email.message.Message``)."""

    def get(self, __name: str) -> str | None: ...


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: Headers
    body: bytes
    fault: str | None = None
    """A fault injected into this request that still lets it be handled (a delay)."""
    gone: Callable[[], bool] = lambda: False
    """True once the client has closed the connection: a long wait for it can end."""

    @classmethod
    def parse_query(cls, query: str) -> dict[str, str]:
        """The first value of each query parameter (blank values kept as "")."""
        return {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}

    def json(self) -> Any:
        """The body as JSON, or a 400 ``invalid_json``."""
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as e:
            raise HTTPError(400, "invalid_json", f"body is not valid JSON: {e}") from None


@dataclass
class Response:
    status: int = 200
    body: bytes = b'{"success":true}'
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None
    """Chunks sent as they come, instead of ``body``, until exhausted (server-sent events)."""

    @classmethod
    def json(cls, payload: Any, status: int = 200) -> Response:
        return cls(status, orjson.dumps(payload))

    @classmethod
    def error(cls, err: HTTPError) -> Response:
        return cls.json({"code": err.code, "message": err.message, **err.details}, err.status)


Handler = Callable[[Request], Response]
ErrorBody = Callable[[HTTPError], Response]
Refused = Callable[[str, Optional[Request], Headers, int, Optional[str]], None]


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    ingest: bool = False
    """Ingestion routes are subject to fault injection; inspection routes never are."""
    public: bool = False
    """Called by SDKs and web pages of any origin (ingestion, ``/token``, feature flags): CORS
    allowed and no access token. Every other route is the debugger's, for its own page and
    for scripts only (see ``guard``)."""
    max_body: int | None = None
    """Bytes a request body may have, after gzip; None means ``limits.MAX_BODY_BYTES``."""
    error: ErrorBody = Response.error
    """How this route's API words an error (by default Segment's ``{"code", "message"}``)."""
    refused: Refused | None = None
    """Told of each request the route answered with an error or a fault: the path, the request
    (None when its body could not be read), its headers, the status and the injected fault."""


class Router:
    """Finds the route for a method and path, or raises 404 / 405."""

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._routes: dict[str, dict[str, Route]] = {}
        self.add(routes)

    def add(self, routes: Iterable[Route]) -> None:
        for route in routes:
            self._routes.setdefault(route.path, {})[route.method] = route

    def find(self, method: str, path: str) -> Route | None:
        """The route for ``method`` and ``path``, or None."""
        return self._routes.get(_key(path), {}).get(method)

    def match(self, method: str, path: str) -> Route:
        """The route for ``method`` and ``path``, or a 404 / 405 ``HTTPError``."""
        by_method = self._routes.get(_key(path))
        if by_method is None:
            raise HTTPError(404, "not_found", f"no endpoint at {path}")
        route = by_method.get(method)
        if route is None:
            allowed = ", ".join(sorted(by_method))
            raise HTTPError(405, "method_not_allowed", f"{path} accepts {allowed}")
        return route


def _key(path: str) -> str:
    return path.rstrip("/") or "/"
