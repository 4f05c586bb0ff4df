"""A scripted HTTP server on 127.0.0.1 that records every request.

Tests give it a script of replies (status, headers, body, delay, connection reset, or a hold
until released) and then await the requests it recorded, instead of sleeping.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


@dataclass
class Reply:
    status: int = 200
    body: bytes | dict[str, Any] | list[Any] | str = field(
        default_factory=lambda: {"success": True}
    )
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    reset: bool = False
    hold: threading.Event | None = None


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes
    body: bytes
    at: float
    status: int | None = None  # the status answered; None for a reset or while in progress

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class ScriptedServer:
    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._tls = tls
        self._lock = threading.Condition()
        self._script: list[Reply] = []
        self.default = Reply()
        self.chooser: Callable[[], Reply] | None = None
        self.requests: list[Recorded] = []
        self._connections: set[socket.socket] = set()
        self.port = 0
        self._listen()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), _make_handler(self))
        self._httpd.daemon_threads = True
        if self._tls is not None:
            self._httpd.socket = self._tls.wrap_socket(self._httpd.socket, server_side=True)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def go_down(self) -> None:
        """Stop listening and cut every open connection, until ``come_back``."""
        self.close()
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def come_back(self) -> None:
        self._listen()

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def next_reply(self) -> Reply:
        with self._lock:
            if self._script:
                return self._script.pop(0)
            return self.chooser() if self.chooser is not None else self.default

    def record(self, rec: Recorded) -> None:
        with self._lock:
            self.requests.append(rec)
            self._lock.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        """Block until ``count`` requests have arrived; fail the test if they do not."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
            return list(self.requests)

    def messages(self) -> list[dict[str, Any]]:
        """Every message of every /v1/batch body received so far, in arrival order."""
        with self._lock:
            return [m for r in self.requests for m in r.json()["batch"]]

    def acknowledged(self) -> list[dict[str, Any]]:
        """Messages of the requests that were answered 2xx: what a real API would have kept."""
        with self._lock:
            return [
                m
                for r in self.requests
                if r.status is not None and 200 <= r.status < 300
                for m in r.json()["batch"]
            ]

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _make_handler(server: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else each reply's body waits ~40 ms for a delayed ACK

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def setup(self) -> None:
            super().setup()
            with server._lock:
                server._connections.add(self.connection)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if len(raw) < length:  # the client died mid-request: nothing arrived to answer
                self.close_connection = True
                return
            body = raw
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(raw)
            headers = {k.lower(): v for k, v in self.headers.items()}
            rec = Recorded(self.command, self.path, headers, raw, body, time.monotonic())
            server.record(rec)
            reply = server.next_reply()
            if reply.hold is not None:
                reply.hold.wait(30)
            if reply.delay:
                time.sleep(reply.delay)
            if reply.reset:
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True
                return
            payload = reply.body
            if isinstance(payload, (dict, list)):
                payload = json.dumps(payload).encode()
            elif isinstance(payload, str):
                payload = payload.encode()
            rec.status = reply.status
            try:
                self.send_response_only(reply.status)
                if "Date" not in reply.headers:
                    self.send_header("Date", self.date_time_string())
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the client gave up (a timeout test); nothing to answer
                self.close_connection = True

        do_GET = do_POST

    return Handler


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``predicate`` (for state that offers no event to wait on); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)
