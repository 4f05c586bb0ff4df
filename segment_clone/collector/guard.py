"""Who may talk to the collector: the Host allow-list, Origin checks, CORS and the access token.

A web page the developer visits can send requests to 127.0.0.1 too. Two attacks follow, both
well known from local development servers:

- DNS rebinding: a name the attacker controls is made to resolve to 127.0.0.1, so that the
  page's own origin reads the collector. Every request's ``Host`` must therefore be a name
  allowed here (loopback names, the bound address, ``--allowed-host``) or an IP address (a
  rebinding needs a name the attacker controls).
- Cross-site requests: a page on another origin posts to ``/api/reset``. The debugger's API (every
  route that is not ``public``) takes browser requests only from the collector's own origin,
  and a state-changing one only with a JSON body, which a browser does not send cross-origin
  without a CORS preflight that is refused here.

Public routes (ingestion: ``/v1/*``, Mixpanel's endpoints, ``/token``) accept any origin and
answer CORS preflights, as Segment's and Mixpanel's APIs do, so that analytics.js or
mixpanel-js in a local web app can send events. Beyond loopback, the debugger (page and API)
also needs the access ``token``; ingestion does not.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie

from .routing import Headers, HTTPError, Request, Response, Route

log = logging.getLogger("segment_clone.collector")

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
TOKEN_COOKIE = "segment_clone_token"
TOKEN_ENV = "SEGMENT_CLONE_COLLECTOR_TOKEN"
"""Where the collector, and ``segment-clone events --url``, find the token when not given."""
CORS_MAX_AGE = "600"
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
"""On every answer; the debugger page replaces the CSP by its own, which also has
``frame-ancestors 'none'``."""


def host_name(host: str) -> str:
    """The name in a ``Host`` header, without port or IPv6 brackets, lowercase."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, _, _ = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    return name


def is_loopback(host: str) -> bool:
    """True for a name or address that only this machine can reach."""
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Guard:
    """The checks every request passes before its route runs (``check``), and the headers every
    answer gets (``finish``).

    ``bound``: the address the collector listens on; ``allowed_hosts``: more names a client may
    use in ``Host``; ``token``: the debugger's access token, None when it needs none.
    """

    def __init__(
        self, bound: str, allowed_hosts: Iterable[str] = (), token: str | None = None
    ) -> None:
        if token == "":
            raise ValueError("the access token must not be empty")
        self.allowed = (
            LOOPBACK_NAMES
            | {host_name(bound) or bound}
            | {host_name(h) or h.lower() for h in allowed_hosts}
        )
        self.token = token

    def host_allowed(self, host: str | None) -> bool:
        """A request without ``Host`` is not from a browser (browsers always send it)."""
        if host is None:
            return True
        name = host_name(host)
        return name in self.allowed or name.endswith(".localhost") or _is_ip(name)

    def check_host(self, headers: Headers) -> None:
        """Raise a 403 ``HTTPError`` for a ``Host`` that is not allowed (DNS rebinding)."""
        host = headers.get("Host")
        if not self.host_allowed(host):
            name = host_name(host or "")
            log.warning(
                "refused a request for Host %r: if that name is yours, start the collector"
                " with --allowed-host %s",
                name,
                name,
            )
            raise HTTPError(403, "forbidden_host", f"Host {name!r} is not allowed", close=True)

    def check(self, method: str, path: str, public: bool, request: Request) -> None:
        """Raise a 403 (or 401) ``HTTPError`` for a request that may not go on to the
        debugger's routes (``public`` ones take any origin and need no token)."""
        if public:
            return
        headers = request.headers
        origin = headers.get("Origin")
        if origin is not None and origin.lower() != f"http://{headers.get('Host') or ''}".lower():
            raise HTTPError(
                403, "forbidden_origin", f"the debugger's API refuses origin {origin!r}"
            )
        if self.token is not None and not self._has_token(request):
            raise HTTPError(
                401, "token_required", "open the debugger with the URL (and token) it printed"
            )
        if method not in ("GET", "HEAD", "OPTIONS") and not _is_json(headers):
            raise HTTPError(
                403, "json_required", f"{method} {path} needs Content-Type: application/json"
            )

    def _has_token(self, request: Request) -> bool:
        assert self.token is not None
        given = [request.query.get("token", "")]
        scheme, _, credentials = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer":
            given.append(credentials.strip())
        given.append(_cookie(request.headers))
        expected = self.token.encode()
        return any(hmac.compare_digest(g.encode(), expected) for g in given if g)

    def token_redirect(self, request: Request) -> Response | None:
        """The page opened as ``/?token=...``: keep the token in a cookie and drop it from the
        address bar (and so from the history), by a redirect to ``/``."""
        if self.token is None or request.path != "/" or "token" not in request.query:
            return None
        return Response(
            303,
            b"",
            "text/plain",
            {
                "Location": "/",
                "Set-Cookie": f"{TOKEN_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict",
            },
        )

    @staticmethod
    def preflight(route: Route, headers: Headers) -> Response:
        """The answer to a CORS preflight (``OPTIONS``) for a public route."""
        asked = headers.get("Access-Control-Request-Headers")
        return Response(
            204,
            b"",
            "text/plain",
            {
                "Access-Control-Allow-Methods": f"{route.method}, OPTIONS",
                "Access-Control-Allow-Headers": asked or "Content-Type",
                "Access-Control-Max-Age": CORS_MAX_AGE,
            },
        )

    @staticmethod
    def finish(response: Response, public: bool, origin: str | None) -> None:
        """Add the security headers, and CORS on a public route's answer."""
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if public and origin is not None:
            response.headers["Access-Control-Allow-Origin"] = "*"


def _is_json(headers: Headers) -> bool:
    content_type = (headers.get("Content-Type") or "").partition(";")[0].strip().lower()
    return content_type == "application/json"


def _cookie(headers: Headers) -> str:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("Cookie") or "")
    except CookieError:
        return ""
    morsel = jar.get(TOKEN_COOKIE)
    return "" if morsel is None else morsel.value
