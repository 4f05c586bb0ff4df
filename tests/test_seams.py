"""analytics-python's seams, used the way applications' own tests use them.

Each test patches or configures a name that migrating test suites patch after
``s/segment.analytics/segment_clone/``, then checks what upstream's users rely on. Where the
patch wraps the real function, the request still reaches a real loopback server.
"""

from __future__ import annotations

import json
import queue
import ssl
import threading
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import requests
from requests.adapters import HTTPAdapter

import segment_clone as analytics
from segment_clone import Client, oauth_manager, request
from segment_clone.consumer import Consumer
from segment_clone.errors import APIError, FatalError
from segment_clone.oauth_manager import OauthManager

from .server import Reply, ScriptedServer
from .tls import self_signed, server_context

EVENT = {"type": "track", "event": "Signed Up", "userId": "u1"}


class Errors:
    def __init__(self) -> None:
        self.calls: list[tuple[BaseException, list[dict[str, Any]]]] = []

    def __call__(self, exc: BaseException, batch: list[dict[str, Any]]) -> None:
        self.calls.append((exc, batch))


# -- request._session ------------------------------------------------------------------------


def test_every_batch_goes_through_session_post_with_upstreams_arguments(
    server: ScriptedServer,
) -> None:
    client = Client("wk", host=server.url, upload_interval=0.05)
    with mock.patch(
        "segment_clone.request._session.post", wraps=request._session.post
    ) as session_post:
        client.track("u1", "Signed Up", {"plan": "pro"})
        assert client.flush(timeout=10) == 0
    (call,) = session_post.call_args_list
    assert call.args == (server.url + "/v1/batch",)
    assert set(call.kwargs) == {"data", "headers", "timeout"}
    assert call.kwargs["timeout"] == 15
    assert call.kwargs["headers"]["User-Agent"] == "analytics-python/2.4.0"
    assert isinstance(call.kwargs["data"], str)
    body = json.loads(call.kwargs["data"])
    assert body["batch"][0]["properties"] == {"plan": "pro"}
    assert server.messages()[0]["event"] == "Signed Up"
    client.join(timeout=5)


def test_proxies_are_passed_to_session_post_only_when_set(server: ScriptedServer) -> None:
    proxies = {"http": server.url}
    client = Client("wk", host="http://api.segment.invalid", proxies=proxies, send=True)
    with mock.patch(
        "segment_clone.request._session.post", wraps=request._session.post
    ) as session_post:
        client.track("u1", "e")
        assert client.flush(timeout=10) == 0
    assert session_post.call_args.kwargs["proxies"] == proxies
    assert server.wait_for(1)[0].path == "http://api.segment.invalid/v1/batch"
    client.join(timeout=5)


def test_non_ascii_data_is_ascii_json_text_as_upstream_sent(server: ScriptedServer) -> None:
    client = Client("wk", host=server.url, upload_interval=0.05)
    with mock.patch(
        "segment_clone.request._session.post", wraps=request._session.post
    ) as session_post:
        client.track("u1", "Café ☕ 😀")
        assert client.flush(timeout=10) == 0
    data = session_post.call_args.kwargs["data"]
    assert data.isascii()
    assert json.loads(data)["batch"][0]["event"] == "Café ☕ 😀"
    assert server.messages()[0]["event"] == "Café ☕ 😀"
    client.join(timeout=5)


@pytest.mark.usefixtures("fresh_module")
def test_a_failing_session_post_reaches_on_error() -> None:
    errors = Errors()
    analytics.write_key = "wk"
    analytics.on_error = errors
    analytics.max_retries = 0
    with mock.patch(
        "segment_clone.request._session.post", side_effect=requests.ConnectionError("down")
    ):
        analytics.track("u1", "Signed Up")
        analytics.flush()
    ((exc, batch),) = errors.calls
    assert isinstance(exc, requests.ConnectionError)
    assert batch[0]["event"] == "Signed Up"


def test_the_whole_session_can_be_replaced_by_a_mock() -> None:
    response = mock.Mock(status_code=400, text="[]", reason="Bad Request")
    response.json.return_value = []
    with mock.patch("segment_clone.request._session") as session:
        session.post.return_value = response
        with pytest.raises(APIError) as info:
            request.post("wk", batch=[EVENT])
    assert (info.value.status, info.value.code) == (400, "unknown")


def test_session_headers_are_sent(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(request._session.headers, "X-Team", "growth")
    request.post("wk", server.url, batch=[EVENT])
    assert server.wait_for(1)[0].header("X-Team") == "growth"


def test_session_proxies_are_used(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request._session, "proxies", {"http": server.url})
    request.post("wk", "http://api.segment.invalid", batch=[EVENT])
    assert server.wait_for(1)[0].path == "http://api.segment.invalid/v1/batch"


def test_session_verify_and_cert_are_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "server").mkdir()
    (tmp_path / "client").mkdir()
    server_cert, server_key = self_signed(tmp_path / "server")
    client_cert, client_key = self_signed(tmp_path / "client")
    context = server_context(server_cert, server_key)
    context.verify_mode = ssl.CERT_REQUIRED  # the server asks for our client certificate
    context.load_verify_locations(client_cert)
    tls_server = ScriptedServer(tls=context)
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    try:
        with pytest.raises(requests.exceptions.SSLError):  # the server's CA is not trusted
            request.post("wk", tls_server.url, batch=[EVENT])
        monkeypatch.setattr(request._session, "verify", str(server_cert))
        with pytest.raises(requests.exceptions.RequestException):  # no client certificate
            request.post("wk", tls_server.url, batch=[EVENT])
        monkeypatch.setattr(request._session, "cert", (str(client_cert), str(client_key)))
        request.post("wk", tls_server.url, batch=[EVENT])
        assert tls_server.messages() == [EVENT]
    finally:
        tls_server.close()


class CountingAdapter(HTTPAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.sent.append(str(request.url))
        return super().send(request, **kwargs)


def test_a_mounted_adapter_carries_the_batches(server: ScriptedServer) -> None:
    adapter = CountingAdapter()
    request._session.mount(server.url, adapter)
    try:
        client = Client("wk", host=server.url, upload_interval=0.05)
        client.track("u1", "Signed Up")
        assert client.flush(timeout=10) == 0
        client.join(timeout=5)
    finally:
        del request._session.adapters[server.url]
    assert adapter.sent == [server.url + "/v1/batch"]
    assert server.messages()[0]["event"] == "Signed Up"


def test_a_307_is_followed_with_the_body(server: ScriptedServer) -> None:
    moved = Reply(307, b"", headers={"Location": "/moved"})
    server.script(moved, moved)  # requests itself repeats the POST before following it
    request.post("wk", server.url, batch=[EVENT])
    assert server.requests[-1].path == "/moved"
    assert server.messages()[-1] == EVENT


def test_a_302_is_reported_instead_of_dropping_the_batch_behind_a_get(
    server: ScriptedServer,
) -> None:
    server.script(Reply(302, b"", headers={"Location": "/elsewhere"}))
    with pytest.raises(APIError) as info:
        request.post("wk", server.url, batch=[EVENT])
    assert info.value.code == "redirect"
    assert [r.path for r in server.requests] == ["/v1/batch"]


# -- consumer.post and client.post ------------------------------------------------------------


def test_consumer_post_can_be_patched_to_count_batches() -> None:
    with mock.patch("segment_clone.consumer.post") as post:
        client = Client("wk", upload_size=10)
        for i in range(25):
            client.track("u1", "e", {"i": i})
        assert client.flush(timeout=10) == 0
        client.join(timeout=5)
    batches = [call.kwargs["batch"] for call in post.call_args_list]
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [m["properties"]["i"] for b in batches for m in b] == list(range(25))
    assert post.call_args.kwargs["retry_count"] == 0


def test_client_post_is_what_sync_mode_calls() -> None:
    with mock.patch("segment_clone.client.post") as post:
        client = Client("wk", sync_mode=True)
        ok, msg = client.track("u1", "Signed Up")
    assert ok is True
    (call,) = post.call_args_list
    assert call.args == ("wk", None)
    assert call.kwargs["batch"] == [msg]


def test_a_patched_post_that_fails_reaches_on_error() -> None:
    errors = Errors()
    with mock.patch("segment_clone.consumer.post", side_effect=APIError(400, "bad", "no")):
        client = Client("wk", on_error=errors)
        client.track("u1", "Signed Up")
        assert client.flush(timeout=10) == 0
        client.join(timeout=5)
    ((exc, batch),) = errors.calls
    assert isinstance(exc, APIError) and exc.status == 400
    assert batch[0]["event"] == "Signed Up"


# -- Consumer: a plain queue.Queue, request(), the rate-limit state ----------------------------


def test_consumer_drains_a_plain_queue(server: ScriptedServer) -> None:
    q: queue.Queue[Any] = queue.Queue()
    consumer = Consumer(q, "wk", host=server.url, upload_interval=0.05)
    consumer.start()
    for i in range(3):
        q.put({**EVENT, "messageId": str(i)})
    q.join()  # every item was marked done: delivered
    consumer.pause()
    consumer.join(5)
    assert [m["messageId"] for m in server.messages()] == ["0", "1", "2"]


def test_request_raises_the_final_exception(server: ScriptedServer) -> None:
    server.default = Reply(500, {"code": "boom", "message": "down"})
    consumer = Consumer(None, "wk", host=server.url, retries=1)
    with pytest.raises(APIError) as info:
        consumer.request([EVENT])
    assert info.value.status == 500
    assert len(server.requests) == 2  # the first retry is immediate

    unreachable = Consumer(None, "wk", host="http://127.0.0.1:9", retries=0)
    with pytest.raises(requests.ConnectionError):
        unreachable.request([EVENT])


def test_request_raises_fatal_error_for_unusable_oauth_credentials(
    server: ScriptedServer,
) -> None:
    manager = OauthManager("id", "not a key", "kid", server.url)
    consumer = Consumer(None, "wk", host=server.url, oauth_manager=manager, retries=3)
    with pytest.raises(FatalError):
        consumer.request([EVENT])
    assert [r.path for r in server.requests] == []  # the key failed before any request


def test_rate_limit_state_tells_the_truth(server: ScriptedServer) -> None:
    server.script(Reply(429, headers={"Retry-After": "30"}))
    q: queue.Queue[Any] = queue.Queue()
    q.put(EVENT)
    consumer = Consumer(q, "wk", host=server.url, upload_interval=0.05)
    before = time.monotonic()
    assert consumer.upload() is False
    assert consumer.rate_limited_until is not None and consumer.rate_limit_start_time is not None
    assert 29 <= consumer.rate_limited_until - before <= 31
    assert q.qsize() == 1  # re-queued, not dropped
    with mock.patch.object(Consumer, "_wait", return_value=True) as wait:
        assert consumer.upload() is True
    assert 28 <= wait.call_args.args[0] <= 30  # the rest of the server's 30 s
    assert (consumer.rate_limited_until, consumer.rate_limit_start_time) == (None, None)
    assert len(server.messages()) == 2


# -- time.sleep, time.monotonic, Consumer._wait -----------------------------------------------


def test_patched_time_makes_backoff_instant(server: ScriptedServer) -> None:
    server.script(Reply(500), Reply(500))
    clock = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    consumer = Consumer(None, "wk", host=server.url, retries=3)
    with (
        mock.patch("time.sleep", side_effect=sleep),
        mock.patch("time.monotonic", side_effect=lambda: clock[0]),
    ):
        consumer.request([EVENT])
    assert 0.5 <= sum(slept) <= 0.55  # the schedule: 0, then 0.5 s plus up to 10 % jitter
    assert len(server.requests) == 3


def test_consumer_wait_can_be_patched(server: ScriptedServer) -> None:
    server.script(Reply(503), Reply(503))
    consumer = Consumer(None, "wk", host=server.url, retries=3)
    with mock.patch.object(Consumer, "_wait", return_value=True) as wait:
        consumer.request([EVENT])
    delays = [call.args[0] for call in wait.call_args_list]
    assert delays[0] == 0 and 0.5 <= delays[1] <= 0.55


def test_pause_cuts_a_wait_short() -> None:
    consumer = Consumer(queue.Queue(), "wk")
    threading.Timer(0.1, consumer.pause).start()
    started = time.monotonic()
    assert consumer._wait(30) is False
    assert time.monotonic() - started < 5


# -- OauthManager ------------------------------------------------------------------------------


def test_oauth_manager_keeps_upstreams_attributes_and_poller(
    server: ScriptedServer, key_pair: tuple[str, str]
) -> None:
    server.default = Reply(200, {"access_token": "tok", "expires_in": 3600})
    manager = OauthManager("id", key_pair[0], "kid", server.url)
    assert (manager.token, manager.error, manager.retry_count, manager.thread) == (
        None,
        None,
        0,
        None,
    )
    with mock.patch(
        "segment_clone.oauth_manager._session.post", wraps=oauth_manager._session.post
    ) as session_post:
        manager._poller_loop()  # one cycle, on this thread
    assert session_post.call_args.args == (server.url + "/token",)
    assert manager.token == "tok" and manager.retry_count == 0
    assert isinstance(manager.thread, threading.Timer) and manager.thread.is_alive()
    assert manager.token_mutex.acquire(blocking=False)
    manager.token_mutex.release()
    manager.thread.cancel()


def test_oauth_rate_limit_sleeps_as_upstream(
    server: ScriptedServer, key_pair: tuple[str, str]
) -> None:
    server.script(Reply(429, headers={"Retry-After": "7"}))
    manager = OauthManager("id", key_pair[0], "kid", server.url)
    with mock.patch("time.sleep") as sleep:
        manager._poller_loop()
        manager.stop()
    sleep.assert_called_with(7)
    assert manager.retry_count == 1


def test_oauth_permanent_failure_is_kept_in_error(
    server: ScriptedServer, key_pair: tuple[str, str]
) -> None:
    server.script(Reply(400, {"error": "invalid_client", "error_description": "unknown"}))
    manager = OauthManager("id", key_pair[0], "kid", server.url)
    manager._poller_loop()
    assert isinstance(manager.error, FatalError)
    with pytest.raises(FatalError):
        manager.get_token()
    assert len(server.requests) == 1  # a permanent failure is not retried


# -- on_error ----------------------------------------------------------------------------------


@pytest.mark.parametrize("falsy", [False, None, 0, ""])
def test_a_falsy_on_error_means_no_handler(server: ScriptedServer, falsy: Any) -> None:
    server.default = Reply(400, {"code": "bad", "message": "no"})
    client = Client("wk", host=server.url, on_error=falsy, upload_interval=0.05)
    client.track("u1", "e")
    assert client.flush(timeout=10) == 0
    assert client.stats()["dropped"] == {"rejected": 1}
    client.join(timeout=5)
