"""A Lambda Runtime API on 127.0.0.1, enough for ``awslambdaric``: it hands out invocations one
at a time and, as the platform freezes a function once it has answered, stops the runtime's
process with SIGSTOP the moment it posts a response, before acknowledging it."""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

PREFIX = "/2018-06-01/runtime"
WAIT = 30.0
"""Seconds the test waits for the function to answer an invocation."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A runtime killed at the end of a test drops its connection: not worth a traceback."""


class RuntimeAPI:
    def __init__(self) -> None:
        self.pid: int | None = None
        """The runtime's process: set before the first invocation."""
        self._invocations: queue.Queue[tuple[str, bytes] | None] = queue.Queue()
        self._answers: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        """What ``AWS_LAMBDA_RUNTIME_API`` holds: host and port, no scheme."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def invoke(self, event: Any) -> tuple[str, Any]:
        """Invoke the function with ``event``; its answer, ``("response" | "error", body)``,
        once its process is frozen."""
        self._invocations.put((str(uuid.uuid4()), json.dumps(event).encode()))
        return self._answers.get(timeout=WAIT)

    def thaw(self) -> None:
        assert self.pid is not None
        os.kill(self.pid, signal.SIGCONT)

    def __enter__(self) -> RuntimeAPI:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._invocations.put(None)  # a waiting long poll ends
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    return self._reply(404)
                invocation = api._invocations.get()  # the long poll: until there is one
                if invocation is None:
                    return self._reply(503)
                request_id, body = invocation
                self._reply(
                    200,
                    body,
                    {
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": "9999999999999",
                        "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:local:0:function:f",
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                        # awslambdaric 4.2 dies of SIGSEGV when these two are missing
                        "Lambda-Runtime-Client-Context": "",
                        "Lambda-Runtime-Cognito-Identity": "",
                        "Content-Type": "application/json",
                    },
                )

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                kind = self.path.rsplit("/", 1)[-1]  # response, error (or init/error)
                if kind in ("response", "error"):
                    assert api.pid is not None
                    os.kill(api.pid, signal.SIGSTOP)  # frozen before it hears back
                api._answers.put((kind, json.loads(body or b"null")))
                self._reply(202)

            def _reply(self, status: int, body: bytes = b"", headers: Any = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
