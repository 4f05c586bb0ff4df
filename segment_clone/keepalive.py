"""HTTP/1.1 keep-alive connections, written for one job: the SDK's batch POST.

A batch POST is one request line, a few headers and a JSON body, and its answer is a status, a
few headers and a short body. urllib3 spends about 0.7 ms of Python per request on generality
this needs none of (request and response objects, header dicts built through ``email``,
retry and redirect bookkeeping); here a request costs about 0.05 ms, on a thread that shares
the GIL with the application. ``transport.Session`` sends direct ``http://`` and ``https://``
POSTs here and everything else (proxies, mounted adapters) through requests.

Errors are raised as the ``requests.exceptions`` types requests would raise, so ``on_error``
handlers written for analytics-python keep working.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import weakref
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import BinaryIO, NamedTuple

import requests

MAX_LINE = 65536
MAX_HEADERS = 100
MAX_BODY = 16 << 20
"""Bytes of answer body read at most: the tracking API answers in a few bytes."""
NO_BODY_STATUSES = frozenset({204, 304})

_pending = threading.local()


@contextmanager
def while_answer_pending(work: Callable[[], None]) -> Iterator[None]:
    """Run ``work`` between sending each request this thread makes and reading its answer:
    a consumer prepares its next batch there while the server works on the current one.
    ``work`` must not raise; nothing runs when the POST takes requests' path (a proxy)."""
    _pending.work = work
    try:
        yield
    finally:
        _pending.work = None


class Answer(NamedTuple):
    """A response, read in full."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes


class Origin(NamedTuple):
    """Where a URL's requests go, and what its request line names."""

    host: str
    port: int
    tls: bool
    target: str
    host_header: str


class Pool:
    """Idle keep-alive connections to one origin, shared by every thread that posts there."""

    def __init__(self, origin: Origin, tls: ssl.SSLContext | None, maxsize: int) -> None:
        self.origin = origin
        self._tls = tls
        self._maxsize = maxsize
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        weakref.finalize(self, _close_all, self._idle)  # a dropped pool closes its sockets

    def post(
        self, head: bytes, body: bytes, connect_timeout: float | None, read_timeout: float | None
    ) -> Answer:
        """Send one request (``head`` ends with the blank line) and read its answer."""
        conn = self._checkout(connect_timeout)
        try:
            answer, reusable = conn.exchange(head + body, read_timeout)
        except BaseException:
            conn.close()
            raise
        if reusable:
            self._checkin(conn)
        else:
            conn.close()
        return answer

    def close(self) -> None:
        with self._lock:
            _close_all(self._idle)

    def _checkout(self, connect_timeout: float | None) -> _Connection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return _Connection.open(self.origin, self._tls, connect_timeout)
            if conn.usable():
                return conn
            conn.close()  # the server closed it while it was idle

    def _checkin(self, conn: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self._maxsize:
                self._idle.append(conn)
                return
        conn.close()


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: BinaryIO = sock.makefile("rb")

    @classmethod
    def open(
        cls, origin: Origin, tls: ssl.SSLContext | None, connect_timeout: float | None
    ) -> _Connection:
        try:
            sock = socket.create_connection((origin.host, origin.port), connect_timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls is not None:
                sock = tls.wrap_socket(sock, server_hostname=origin.host)
        except socket.timeout as e:
            raise requests.ConnectTimeout(f"connecting to {origin.host_header}: {e}") from e
        except ssl.SSLError as e:  # also certificate verification failures
            raise requests.exceptions.SSLError(f"{origin.host_header}: {e}") from e
        except OSError as e:
            raise requests.ConnectionError(f"connecting to {origin.host_header}: {e}") from e
        return cls(sock)

    def usable(self) -> bool:
        """An idle connection the server has not closed (nothing to read on it yet)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def exchange(self, request: bytes, read_timeout: float | None) -> tuple[Answer, bool]:
        """Send ``request``, read the answer; True when the connection can be used again."""
        self.sock.settimeout(read_timeout)
        try:
            self.sock.sendall(request)
            work = getattr(_pending, "work", None)
            if work is not None:
                work()
            return _read_answer(self.reader)
        except socket.timeout as e:
            raise requests.ReadTimeout(f"no answer within {read_timeout}s: {e}") from e
        except ssl.SSLError as e:
            raise requests.exceptions.SSLError(str(e)) from e
        except OSError as e:
            raise requests.ConnectionError(f"connection broken: {e}") from e

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


def _close_all(connections: list[_Connection]) -> None:
    for conn in connections:
        conn.close()
    connections.clear()


def _read_answer(reader: BinaryIO) -> tuple[Answer, bool]:
    while True:
        version, status, reason = _status_line(reader)
        headers = list(_header_lines(reader))
        if not 100 <= status < 200:  # skip interim answers (100 Continue, 103)
            break
    fields = {name.lower(): value for name, value in headers}
    close = "close" in fields.get("connection", "").lower() or version != "HTTP/1.1"
    if status in NO_BODY_STATUSES:
        body = b""
    elif "chunked" in fields.get("transfer-encoding", "").lower():
        body = _chunked(reader)
    elif "content-length" in fields:
        body = _exactly(reader, _length(fields["content-length"]))
    else:
        body, close = _exactly(reader, MAX_BODY, until_eof=True), True
    encoding = fields.get("content-encoding", "").lower()
    if encoding in ("gzip", "deflate") and body:
        body = zlib.decompress(body, 47)  # gzip or zlib header, detected
    return Answer(status, reason, headers, body), not close


def _line(reader: BinaryIO) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if not line:
        raise requests.ConnectionError("the server closed the connection without an answer")
    if len(line) > MAX_LINE:
        raise requests.ConnectionError("an answer line longer than 64 KiB")
    return line


def _status_line(reader: BinaryIO) -> tuple[str, int, str]:
    parts = _line(reader).decode("latin-1").rstrip("\r\n").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise requests.ConnectionError(f"not an HTTP answer: {' '.join(parts)[:80]!r}")
    return parts[0], int(parts[1]), parts[2] if len(parts) > 2 else ""


def _header_lines(reader: BinaryIO) -> Iterable[tuple[str, str]]:
    for _ in range(MAX_HEADERS + 1):
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            return
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise requests.ConnectionError(f"a malformed answer header: {line[:80]!r}")
        yield name.strip(), value.strip()
    raise requests.ConnectionError(f"more than {MAX_HEADERS} answer headers")


def _length(value: str) -> int:
    if not value.isdigit() or int(value) > MAX_BODY:
        raise requests.ConnectionError(f"an unusable Content-Length: {value[:20]!r}")
    return int(value)


def _exactly(reader: BinaryIO, size: int, until_eof: bool = False) -> bytes:
    """``size`` bytes; with ``until_eof``, whatever comes before the end, up to ``size``."""
    data = reader.read(size + until_eof)
    if until_eof and len(data) > size:
        raise requests.ConnectionError(f"an answer body over {size} bytes")
    if len(data) < size and not until_eof:
        raise requests.ConnectionError(f"the answer ended after {len(data)} of {size} bytes")
    return data


def _chunked(reader: BinaryIO) -> bytes:
    parts = []
    while True:
        size_field = _line(reader).split(b";", 1)[0].strip()
        try:
            size = int(size_field, 16)
        except ValueError:
            raise requests.ConnectionError(f"a malformed chunk size: {size_field[:20]!r}") from None
        if size == 0:
            break
        if size > MAX_BODY:
            raise requests.ConnectionError(f"an answer chunk of {size} bytes")
        parts.append(_exactly(reader, size))
        _line(reader)  # the CRLF after the chunk
    while _line(reader) not in (b"\r\n", b"\n"):  # trailer fields, ignored
        pass
    return b"".join(parts)
