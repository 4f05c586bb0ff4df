"""The short path's HTTP/1.1, against a raw loopback server that answers byte for byte."""

from __future__ import annotations

import gzip
import socket
import socketserver
import threading
from collections.abc import Iterator
from typing import BinaryIO

import pytest
import requests

from segment_clone.transport import Session


class RawServer:
    """Answers each request with the next of ``answers`` (raw bytes); ``close`` after an answer
    closes the connection without saying so first."""

    def __init__(self, answers: list[bytes], close: bool = False) -> None:
        self.answers = answers
        self.connections = 0
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                while outer.answers:
                    if not _read_request(self.rfile):
                        return
                    self.wfile.write(outer.answers.pop(0))
                    self.wfile.flush()
                    if close:
                        return

        self.closed = threading.Semaphore(0)
        """Released each time the server has closed a connection."""

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True

            def shutdown_request(self, request: object) -> None:
                super().shutdown_request(request)  # type: ignore[arg-type]
                outer.closed.release()

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/batch"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _read_request(rfile: BinaryIO) -> bool:
    length = 0
    while True:
        line = rfile.readline()
        if not line:
            return False
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
        if line in (b"\r\n", b"\n"):
            break
    rfile.read(length)
    return True


@pytest.fixture
def serve() -> Iterator[list[RawServer]]:
    servers: list[RawServer] = []
    yield servers
    for server in servers:
        server.stop()


def post(session: Session, server: RawServer) -> requests.Response:
    return session.post(server.url, data=b"{}", headers={"X-A": "1"}, timeout=5)


def test_chunked_and_gzipped_answers_are_read(serve: list[RawServer]) -> None:
    body = gzip.compress(b'{"code":"x","message":"chunked"}')
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:]))
    server = RawServer(
        [
            b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Encoding: gzip\r\n\r\n" + chunks + b"0\r\nX-Trailer: 1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
        ]
    )
    serve.append(server)
    session = Session()
    answer = post(session, server)
    assert answer.status_code == 400
    assert answer.json() == {"code": "x", "message": "chunked"}
    assert post(session, server).status_code == 200
    assert server.connections == 1  # kept alive across both


def test_an_answer_read_until_the_connection_closes(serve: list[RawServer]) -> None:
    server = RawServer(
        [b"HTTP/1.0 200 OK\r\n\r\nuntil the end", b"HTTP/1.1 204 No Content\r\n\r\n"], close=True
    )
    serve.append(server)
    session = Session()
    answer = post(session, server)
    assert (answer.status_code, answer.content) == (200, b"until the end")
    assert post(session, server).status_code == 204
    assert server.connections == 2


def test_a_connection_the_server_closed_while_idle_is_replaced(serve: list[RawServer]) -> None:
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    server = RawServer([ok, ok, ok], close=True)  # closes after each answer, unannounced
    serve.append(server)
    session = Session()
    for _ in range(3):
        assert post(session, server).status_code == 200
        assert server.closed.acquire(timeout=5)  # the pooled connection is now dead
    assert server.connections == 3


@pytest.mark.parametrize(
    "answer",
    [
        b"",  # closed without a word
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
    ],
)
def test_broken_answers_are_connection_errors(serve: list[RawServer], answer: bytes) -> None:
    server = RawServer([answer], close=True)
    serve.append(server)
    with pytest.raises(requests.ConnectionError):
        post(Session(), server)


def test_header_values_cannot_split_the_request(serve: list[RawServer]) -> None:
    server = RawServer([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"])
    serve.append(server)
    with pytest.raises(requests.exceptions.InvalidHeader):
        Session().post(server.url, data=b"{}", headers={"X-A": "1\r\nX-B: 2"}, timeout=5)


def test_a_refused_connection_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(requests.ConnectionError):
        Session().post(f"http://127.0.0.1:{port}/v1/batch", data=b"{}", timeout=5)
