"""Bounds on connections: how many at once, how long reading one request may take, and telling
when a client has gone.

Each connection holds a thread. Without bounds, 360 idle connections held 363 threads, and a
body trickled in a byte at a time held its thread for as long as the sender liked (the socket
timeout applies to each read, not to the request).
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

MAX_CONNECTIONS = 128
"""Open connections at most; one more is answered 429 and closed."""
REQUEST_DEADLINE = 30.0
"""Seconds from the first byte of a request to the last byte of its body."""
SCAN_INTERVAL = 0.25
BUSY_BODY = b'{"code":"too_many_connections","message":"too many open connections"}'
BUSY = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(BUSY_BODY), BUSY_BODY)
)


def refuse_busy(sock: socket.socket) -> None:
    """Answer 429 on a connection that will not be served (without reading its request)."""
    with contextlib.suppress(OSError):
        sock.settimeout(1.0)
        sock.sendall(BUSY)


def client_gone(sock: socket.socket) -> bool:
    """True when the client has closed its side (what it sent next, if anything, is left)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
    except (OSError, ValueError):  # ValueError: the socket is already closed
        return True


class Deadlines:
    """Stops reading a request that is not in by its deadline: a thread checks every
    ``SCAN_INTERVAL`` and shuts the reading side of a late connection, so that its handler's
    read returns at once (and ``expired`` tells it why)."""

    def __init__(self) -> None:
        self._due: dict[socket.socket, float] = {}
        self._expired: set[socket.socket] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="segment-clone-deadlines", daemon=True
        )
        self._thread.start()

    def reading(self, sock: socket.socket, seconds: float) -> None:
        self._due[sock] = time.monotonic() + seconds

    def done(self, sock: socket.socket) -> None:
        self._due.pop(sock, None)
        self._expired.discard(sock)

    def expired(self, sock: socket.socket) -> bool:
        return sock in self._expired

    def _run(self) -> None:
        while not self._stop.wait(SCAN_INTERVAL):
            now = time.monotonic()
            for sock, due in list(self._due.items()):
                if due <= now and self._due.pop(sock, None) is not None:
                    self._expired.add(sock)
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RD)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
