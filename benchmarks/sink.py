"""A fast counting HTTP/1.1 sink on 127.0.0.1 for the benchmarks, run in its own process.

It speaks each SDK's batch protocol (``protocols.py``: the paths, how to count a body's events
and what to answer), answers every batch in one write (with TCP_NODELAY: a reply split over two
writes stalls on delayed ACKs), keeps connections alive, gunzips ``Content-Encoding: gzip``
bodies and counts the events of each batch under a lock (an unlocked counter shared by the
connection threads under-counts). ``GET /count`` reads the counters (``unrouted`` counts requests
to paths it does not know) and ``POST /reset`` zeroes them, so a driver can time a run until
every event it tracked has been acknowledged.

Run as ``python sink.py [--port N]``: it prints the port it listens on, then serves until its
standard input closes. ``running_sink()`` does that from another script.
"""

from __future__ import annotations

import argparse
import json
import socket
import socketserver
import subprocess
import sys
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from protocols import ROUTES

MAX_HEADER_LINE = 8192
MAX_HEADERS = 100
MAX_BODY = 8 << 20
"""Bytes accepted for a request body, compressed or not; real batches stay under 500 KB."""


class Counters:
    """Messages, requests and body bytes received since the last reset; messages by path too,
    for a client that delivers to several destinations."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.events = 0
        self.requests = 0
        self.bytes = 0
        self.unrouted = 0
        self.paths: dict[str, int] = {}

    def add(self, path: str, events: int, size: int) -> None:
        with self._lock:
            self.events += events
            self.requests += 1
            self.bytes += size
            self.paths[path] = self.paths.get(path, 0) + events

    def add_unrouted(self) -> None:
        with self._lock:
            self.unrouted += 1

    def read(self, reset: bool = False) -> dict[str, Any]:
        with self._lock:
            values = {
                "events": self.events,
                "requests": self.requests,
                "bytes": self.bytes,
                "unrouted": self.unrouted,
                "paths": dict(self.paths),
            }
            if reset:
                self.events = self.requests = self.bytes = self.unrouted = 0
                self.paths = {}
        return values


def _response(status: str, body: bytes, close: bool = False) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode("ascii") + b"\r\n" + body


REPLIES = {
    path: _response("200 OK", route.reply)
    for path, route in ROUTES.items()
    if isinstance(route.reply, bytes)
}
"""The fixed answers, written once; a route whose answer depends on the count is written per
request."""


class BadRequest(Exception):
    """The request cannot be read; answered with ``status`` and the connection closed."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


def _gunzip(body: bytes) -> bytes:
    inflater = zlib.decompressobj(31)
    data = inflater.decompress(body, MAX_BODY)
    if inflater.unconsumed_tail:
        raise BadRequest("413 Payload Too Large")
    return data


class Handler(socketserver.StreamRequestHandler):
    """Serves one keep-alive connection: a loop of request, reply."""

    server: Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle(self) -> None:
        while True:
            try:
                request = self._read_request()
                if request is None:
                    return
                reply, close = self._dispatch(*request)
            except BadRequest as e:
                self.wfile.write(_response(e.status, b"{}", close=True))
                return
            except (ValueError, KeyError, TypeError, zlib.error):  # not a readable batch
                self.wfile.write(_response("400 Bad Request", b"{}", close=True))
                return
            self.wfile.write(reply)
            if close:
                return

    def _read_request(self) -> tuple[str, str, dict[str, str], bytes] | None:
        line = self.rfile.readline(MAX_HEADER_LINE)
        if not line:
            return None
        parts = line.split()
        if len(parts) != 3:
            raise BadRequest("400 Bad Request")
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADERS):
            header = self.rfile.readline(MAX_HEADER_LINE)
            if header in (b"\r\n", b"\n", b""):
                break
            name, _, value = header.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            raise BadRequest("431 Request Header Fields Too Large")
        if "chunked" in headers.get("transfer-encoding", ""):
            raise BadRequest("411 Length Required")
        length = int(headers.get("content-length") or 0)
        if length > MAX_BODY:
            raise BadRequest("413 Payload Too Large")
        body = self.rfile.read(length) if length else b""
        return parts[0].decode("ascii"), parts[1].decode("ascii"), headers, body

    def _dispatch(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[bytes, bool]:
        close = headers.get("connection", "").lower() == "close"
        counters = self.server.counters
        path = path.partition("?")[0]
        route = ROUTES.get(path)
        if method == "POST" and route:
            size = len(body)
            if headers.get("content-encoding") == "gzip":
                body = _gunzip(body)
            events = route.count(body)
            counters.add(path, events, size)
            answer = route.reply
            if isinstance(answer, bytes):
                return REPLIES[path], close
            return _response("200 OK", answer(events)), close
        if path in ("/count", "/reset"):
            values = counters.read(reset=method == "POST" and path == "/reset")
            return _response("200 OK", json.dumps(values).encode()), close
        counters.add_unrouted()
        return _response("404 Not Found", b"{}"), close


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.counters = Counters()


@contextmanager
def running_sink(python: str = sys.executable) -> Iterator[str]:
    """Start the sink in a child process; yield its base URL; stop it on exit."""
    proc = subprocess.Popen(
        [python, str(Path(__file__).resolve()), "--port", "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = Server(args.port)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    print(server.server_address[1], flush=True)
    try:
        sys.stdin.read()  # the parent closes our stdin to stop us
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
