"""Fixtures for the Mixpanel facade: a Mixpanel-speaking scripted server, a recording consumer,
background consumers that are always shut down, and urllib3's retry sleeps on a fake clock."""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import urllib3.util.retry
from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from segment_clone.mixpanel import AsyncBufferedConsumer, Consumer, Mixpanel

from ..server import Recorded, Reply, ScriptedServer

OK = Reply(body={"status": 1, "error": None})


@pytest.fixture
def mp_server(server: ScriptedServer) -> ScriptedServer:
    """The scripted server, answering like Mixpanel's ``verbose=1`` endpoints by default."""
    server.default = OK
    return server


def form(rec: Recorded) -> dict[str, str]:
    """The url-encoded form of a recorded request, one value per field."""
    fields = parse_qs(rec.body.decode(), keep_blank_values=True, strict_parsing=True)
    assert all(len(v) == 1 for v in fields.values()), fields
    return {k: v[0] for k, v in fields.items()}


def data(rec: Recorded) -> Any:
    """The records of a recorded request: its JSON body (the background lanes' wire), or the
    JSON in its ``data`` form field (upstream's, kept by the synchronous consumers)."""
    if rec.header("content-type") == "application/json":
        return json.loads(rec.body)
    return json.loads(form(rec)["data"])


def endpoint(rec: Recorded) -> str:
    """The path of a recorded request, without its query."""
    return rec.path.partition("?")[0]


def delivered(server: ScriptedServer) -> list[dict[str, Any]]:
    """Every message received so far, batches flattened, in arrival order."""
    out: list[dict[str, Any]] = []
    for rec in server.requests:
        body = data(rec)
        out.extend(body if isinstance(body, list) else [body])
    return out


class Errors:
    """An on_error callback recording (exception, messages)."""

    def __init__(self) -> None:
        self.calls: list[tuple[BaseException, list[Any]]] = []

    def __call__(self, exc: BaseException, messages: list[Any]) -> None:
        self.calls.append((exc, messages))


class Log:
    """A consumer that records ``(endpoint, decoded message, api_key)`` for each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []
        self.arg_counts: list[int] = []

    def send(self, endpoint: str, json_message: str, *args: Any, **kwargs: Any) -> None:
        self.arg_counts.append(2 + len(args) + len(kwargs))
        api_key = args[0] if args else kwargs.get("api_key")
        self.calls.append((endpoint, json.loads(json_message), api_key))


@pytest.fixture
def log() -> Log:
    return Log()


@pytest.fixture
def mp(log: Log) -> Mixpanel:
    """The setup of acceptance checks A1-A20: fixed clock and insert id."""
    client = Mixpanel("12345", consumer=log)
    client._now = lambda: 1000.1  # type: ignore[method-assign]
    client._make_insert_id = lambda: "abcdefg"  # type: ignore[method-assign]
    return client


@pytest.fixture
def make_async(
    mp_server: ScriptedServer, async_consumers: Callable[..., AsyncBufferedConsumer]
) -> Callable[..., AsyncBufferedConsumer]:
    """Background consumers pointed at the scripted server; each is shut down at teardown."""
    return partial(async_consumers, api_host=mp_server.url)


class Sleeps(list[float]):
    """Stands in for the ``time`` module inside urllib3's Retry: records sleeps, skips them."""

    time = staticmethod(time.time)

    def sleep(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    sleeps = Sleeps()
    monkeypatch.setattr(urllib3.util.retry, "time", sleeps)
    return sleeps


class Route(HTTPAdapter):
    """Sends requests for a real Mixpanel host to the loopback server instead.

    It records the URL the code under test asked for, so a test can check it exactly while
    the request itself only ever travels to 127.0.0.1.
    """

    def __init__(self, server: ScriptedServer) -> None:
        super().__init__()
        self.server = server
        self.urls: list[str] = []

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:  # type: ignore[override]
        assert request.url is not None
        self.urls.append(request.url)
        parts = urlsplit(request.url)
        request.url = f"{self.server.url}{parts.path}" + (f"?{parts.query}" if parts.query else "")
        return super().send(request, *args, **kwargs)


def route(consumer: Consumer, host: str, server: ScriptedServer) -> Route:
    """Route ``consumer``'s requests for ``https://{host}`` to ``server``."""
    adapter = Route(server)
    consumer._session.mount(f"https://{host}/", adapter)
    return adapter
