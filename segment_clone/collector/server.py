"""The HTTP side of the collector: a threading server with keep-alive, and ``Collector``.

Each connection gets a thread (``ThreadingHTTPServer``) and speaks HTTP/1.1 with keep-alive and
``TCP_NODELAY``: without it the body of each answer, written after its headers, waits for the
client's delayed ACK (about 40 ms), and a keep-alive client is held to a trickle of requests.
Requests are dispatched through a ``Router``: other APIs are added as routes (``extra_routes``)
and other credentials through ``Collector.auth``. A route may answer with a stream (the
debugger's server-sent events), which holds its connection's thread until the collector stops.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterable
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson

from ..version import VERSION
from . import inspection, mixpanel_api, segment_api
from .auth import WriteKeyAuth
from .connections import MAX_CONNECTIONS, REQUEST_DEADLINE, Deadlines, client_gone, refuse_busy
from .faults import Decision, Faults
from .flags import FlagDefinitions
from .flags import routes as flag_routes
from .guard import Guard
from .intake import Intake
from .limits import MAX_BODY_BYTES, read_body
from .live import Changes
from .oauth import OAuthSettings, TokenEndpoint
from .plan import Plan
from .routing import HTTPError, Request, Response, Route, Router
from .store import EventStore, Query, StrPath

log = logging.getLogger("segment_clone.collector")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8787
DEFAULT_DB = "segment-clone-events.db"
IDLE_TIMEOUT = 60.0
"""Seconds an idle keep-alive connection is kept open."""


class CollectorHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = f"segment-clone-collector/{VERSION}"
    disable_nagle_algorithm = True
    timeout = IDLE_TIMEOUT
    server: CollectorServer

    def __getattr__(self, name: str) -> Any:
        """Every method goes through the router, which answers an unknown one with 405 (rather
        than ``http.server``'s 501)."""
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    def handle_one_request(self) -> None:
        """Wait for the next request up to the idle timeout, then give it the server's
        ``request_deadline`` to arrive whole."""
        try:
            waiting = self.rfile.peek(1)  # type: ignore[attr-defined]
        except OSError:  # the idle timeout, or a reset
            waiting = b""
        if not waiting:
            self.close_connection = True
            return
        deadlines = self.server.deadlines
        deadlines.reading(self.connection, self.server.request_deadline)
        try:
            super().handle_one_request()
        finally:
            deadlines.done(self.connection)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """``http.server``'s own refusals of a malformed request: a 4xx, also for the HTTP
        version it does not speak (505), since the request is what is wrong."""
        super().send_error(400 if code >= 500 else code, message, explain)

    def _dispatch(self) -> None:
        path, _, query = self.path.partition("?")
        server = self.server
        method = self.command
        route = server.router.find(method, path)
        if method == "OPTIONS":  # a CORS preflight asks about the method to come
            asked = self.headers.get("Access-Control-Request-Method") or "POST"
            route = server.router.find(asked, path)
        public = route is not None and route.public
        error = Response.error if route is None else route.error
        limit = MAX_BODY_BYTES if route is None or route.max_body is None else route.max_body
        request, decision = None, None
        try:
            server.guard.check_host(self.headers)
            request = Request(method, path, Request.parse_query(query), self.headers, b"")
            request.body = self._read_body(limit)
            request.gone = lambda: client_gone(self.connection)
            if route is not None and method == "OPTIONS" and public:
                server.guard.check(method, path, public, request)
                response = server.guard.preflight(route, self.headers)
            else:
                route = server.router.match(method, path)
                server.guard.check(method, path, public, request)
                redirect = server.guard.token_redirect(request)
                decision = server.faults.decide() if route.ingest else None
                response = redirect or self._handle(route, request, decision)
        except HTTPError as e:
            if e.close:
                self.close_connection = True
            response = error(e)
        except Exception:
            log.exception("error handling %s %s", method, path)
            response = error(HTTPError(500, "internal", "internal error"))
        if route is not None and route.refused is not None and response.status >= 300:
            fault = None if decision is None else decision.describe()
            try:
                route.refused(path, request, self.headers, response.status, fault)
            except Exception:
                log.exception("error logging the refusal of %s %s", method, path)
        server.guard.finish(response, public, self.headers.get("Origin"))
        if decision is not None and decision.delay:
            time.sleep(decision.delay)
        try:
            self._send(response)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client did not wait for the answer

    def _read_body(self, limit: int) -> bytes:
        """The body (even for a 404, to stay in step), or a 408 past the request deadline."""
        deadlines = self.server.deadlines
        try:
            return read_body(self.rfile, self.headers, limit)
        except HTTPError:
            if deadlines.expired(self.connection):
                raise HTTPError(
                    408,
                    "request_timeout",
                    f"the request did not arrive within {self.server.request_deadline:g} s",
                    close=True,
                ) from None
            raise
        finally:
            deadlines.done(self.connection)

    def _handle(self, route: Route, request: Request, decision: Decision | None) -> Response:
        if decision is None:
            return route.handler(request)
        if decision.status is not None:
            response = route.error(
                HTTPError(decision.status, "injected_fault", f"fault injection: {decision.status}")
            )
            if decision.retry_after is not None:
                response.headers["Retry-After"] = f"{decision.retry_after:g}"
            return response
        request.fault = decision.describe()
        return route.handler(request)

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        if response.stream is None:
            self.send_header("Content-Length", str(len(response.body)))
        else:
            self.close_connection = True  # the stream ends with the connection
        for name, value in response.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if response.stream is None:
            if self.command != "HEAD":
                self.wfile.write(response.body)
            return
        try:
            for chunk in response.stream:
                self.wfile.write(chunk)
                self.wfile.flush()
        except OSError:
            pass  # the page went away

    def log_message(self, format: str, *args: Any) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("%s - %s", self.address_string(), format % args)

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The Date header, formatted once a second instead of for every response."""
        if timestamp is not None:
            return super().date_time_string(timestamp)
        return _http_date.now()


class _HttpDate:
    def __init__(self) -> None:
        self._cached = (0, "")

    def now(self) -> str:
        second = int(time.time())
        cached = self._cached
        if cached[0] != second:
            cached = self._cached = (second, formatdate(second, usegmt=True))
        return cached[1]


_http_date = _HttpDate()


class CollectorServer(ThreadingHTTPServer):
    """Tracks open connections so that ``close()`` can end idle keep-alive threads at once,
    answers 429 past ``max_connections``, and gives each request ``request_deadline`` seconds
    to arrive (see ``connections``)."""

    daemon_threads = True
    max_connections = MAX_CONNECTIONS
    request_deadline = REQUEST_DEADLINE
    request_queue_size = MAX_CONNECTIONS
    """The listen backlog (socketserver's default, 5, made a burst of clients wait for SYN
    retransmits, a second or more each)."""

    def __init__(
        self, address: tuple[str, int], router: Router, faults: Faults, guard: Guard
    ) -> None:
        self.router = router
        self.faults = faults
        self.guard = guard
        self._conn_lock = threading.Lock()
        self._ended = threading.Condition(self._conn_lock)
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._open = 0
        self.deadlines = Deadlines()  # before binding: a failed bind calls server_close
        super().__init__(address, CollectorHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            busy = self._open >= self.max_connections
            if not busy:
                self._open += 1
        if busy:
            refuse_busy(request)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections[request] = threading.current_thread()
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._connections.pop(request, None)
                self._open -= 1
                self._ended.notify_all()

    def wait_for_connections(self, at_most: int, timeout: float) -> bool:
        """Block until at most ``at_most`` connections are open; False after ``timeout``."""
        with self._ended:
            return self._ended.wait_for(lambda: self._open <= at_most, timeout)

    def server_close(self) -> None:
        super().server_close()
        self.deadlines.close()

    def close_connections(self, timeout: float) -> None:
        """Stop reading from every open connection and wait up to ``timeout`` for its thread:
        an idle one ends at once, one that is answering finishes its answer first."""
        with self._conn_lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            with contextlib.suppress(OSError):  # already closed by the client
                sock.shutdown(socket.SHUT_RD)
        deadline = time.monotonic() + timeout
        for _, thread in connections:
            thread.join(max(0.0, deadline - time.monotonic()))


class Collector:
    """A local tracking-API server, its event store and its debugger page.

    It speaks Segment's API (``write_keys``: the keys accepted, all if empty) and Mixpanel's
    (``mixpanel_secret``: the project secret ``/import`` asks for, none if None). With a
    tracking ``plan`` (see ``plan.load_plan``) each message is checked on arrival: in
    ``plan_mode="flag"`` it is stored with its violations, in ``"block"`` a request with any
    is refused with 400. A request must name the collector by a loopback name, an IP address,
    the bound ``host`` or one of ``allowed_hosts``; with a ``token`` the debugger (page and
    API, not ingestion) needs it too (see ``guard``). ``flags``, Mixpanel flag definitions
    (``{"flags": [...]}``), are served on ``/flags/definitions`` and evaluated on ``/flags``
    (see ``flags``); ``collector.flags.replace(...)`` changes them while it runs.

    The socket is bound on construction (``port=0`` picks a free port, see ``url``); serve with
    ``serve_forever()`` or in a background thread with ``start()``; ``close()`` stops serving,
    closes open connections and the store.
    """

    def __init__(
        self,
        db_path: StrPath = DEFAULT_DB,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        write_keys: Iterable[str] = (),
        faults: Faults | None = None,
        extra_routes: Iterable[Route] = (),
        oauth: OAuthSettings | None = None,
        mixpanel_secret: str | None = None,
        plan: Plan | None = None,
        plan_mode: str = "flag",
        allowed_hosts: Iterable[str] = (),
        token: str | None = None,
        flags: dict[str, Any] | list[Any] | None = None,
    ) -> None:
        guard = Guard(host, allowed_hosts, token)
        self.flags = FlagDefinitions()
        """The Mixpanel flag definitions that ``/flags/definitions`` and ``/flags`` serve."""
        if flags is not None:
            self.flags.replace(flags)
        mixpanel_guard = mixpanel_api.ProjectSecret(mixpanel_secret)  # checked before opening
        self.db_path = Path(db_path)
        self.changes = Changes()
        self.store = EventStore(self.db_path, on_write=self.changes.wrote)
        try:
            self.intake = Intake(self.store, plan, plan_mode)
        except ValueError:
            self.store.close()
            raise
        self.faults = faults or Faults()
        self.oauth = None if oauth is None else TokenEndpoint(oauth, lambda: (host, self.port))
        """With OAuth on: ``POST /token``, its bearer tokens, ``issued``/``refused`` counts."""
        self.auth = WriteKeyAuth(write_keys, None if self.oauth is None else self.oauth.check_token)
        self.router = Router(
            [
                *segment_api.routes(self.intake, self.auth),
                *mixpanel_api.routes(self.intake, mixpanel_guard),
                *flag_routes(self.flags),
                *inspection.routes(self),
                *(() if self.oauth is None else self.oauth.routes()),
                *extra_routes,
            ]
        )
        try:
            self.server = CollectorServer((host, port), self.router, self.faults, guard)
        except BaseException:
            self.store.close()
            raise
        self.host = host
        self.port: int = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def serve_forever(self) -> None:
        self.server.serve_forever(poll_interval=0.05)

    def start(self) -> Collector:
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(
            target=self.serve_forever, name="segment-clone-collector", daemon=True
        )
        self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting, end waits, streams and open connections (waiting for requests in
        progress), close the store."""
        if self._thread is not None:
            self.server.shutdown()
            self._thread.join(timeout)
        self.server.server_close()
        self.changes.close()
        self.server.close_connections(timeout)
        self.store.close()

    def __enter__(self) -> Collector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading what arrived ------------------------------------------------------------------

    def events(self, **filters: Any) -> list[dict[str, Any]]:
        """Stored messages, oldest first; filters are the fields of ``store.Query``: ``type``,
        ``user_id``, ``user``, ``event``, ``source``, ``q``, ``valid``, ``limit``."""
        return [s.message() for s in self.store.find(Query(**filters))]

    def wait_for(self, count: int, timeout: float = 10.0, **filters: Any) -> list[dict[str, Any]]:
        """Block until at least ``count`` matching messages are stored, then return them all.

        Woken by each write rather than by polling; raises ``AssertionError`` on timeout.
        """
        query = Query(**filters)
        if not self.changes.wait(lambda: self.store.count(query) >= count, timeout):
            raise AssertionError(f"expected {count} events, got {self.store.count(query)}")
        return self.events(**filters)

    def violations(self, **filters: Any) -> list[dict[str, Any]]:
        """Every violation of the tracking plan among the stored messages, oldest first, as
        ``{"event", "id", "type", "field", "message"}`` (``event``: the name, or the type of a
        message without one; ``id``: its arrival number). Filters as for ``events``."""
        query = Query(**{**filters, "valid": False})
        return [
            {"event": entry.event or entry.type, "id": entry.id, **violation}
            for entry in self.store.entries(query, oldest_first=True)
            for violation in orjson.loads(entry.violations or "[]")
        ]

    def assert_no_violations(self, **filters: Any) -> None:
        """Raise ``AssertionError`` listing every violation, if there is any."""
        __tracebackhide__ = True  # pytest shows the caller's line
        found = self.violations(**filters)
        if found:
            lines = [f"{v['event']}: {v['message']} ({v['type']})" for v in found]
            raise AssertionError(
                f"{len(found)} tracking-plan violation(s):\n  " + "\n  ".join(lines)
            )

    def stats(self) -> dict[str, Any]:
        """The store's counts, fault injection, the plan and the last minute's events/s."""
        plan = self.intake.plan
        return {
            **self.store.stats(),
            "faults": self.faults.as_json(),
            "plan": None if plan is None else {**plan.describe(), "mode": self.intake.mode},
            "rate": self.changes.rate(),
            "epoch": self.changes.epoch,
        }

    def reset(self) -> None:
        """Forget every stored message and every count (``POST /api/reset``)."""
        self.store.reset()
        self.faults.reset_count()
        self.changes.reset()
