from __future__ import annotations

import gzip
import json
import logging
import ssl
from base64 import b64encode
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
import requests

from segment_clone import request
from segment_clone.errors import APIError
from segment_clone.request import USER_AGENT, parse_retry_after, post
from segment_clone.transport import Session

from .server import Reply, ScriptedServer
from .tls import self_signed, server_context

MSG = {"type": "track", "event": "e", "userId": "u"}


def test_body_and_headers(server: ScriptedServer) -> None:
    post("wk", server.url, batch=[MSG])
    (req,) = server.wait_for(1)
    assert req.path == "/v1/batch"
    body = req.json()
    assert set(body) == {"batch", "sentAt", "writeKey"}
    assert body["batch"] == [MSG]
    assert body["writeKey"] == "wk"
    assert datetime.fromisoformat(body["sentAt"]).tzinfo is not None
    assert req.header("Content-Type") == "application/json"
    assert req.header("User-Agent") == USER_AGENT
    assert req.header("Authorization") == "Basic " + b64encode(b"wk:").decode()
    assert req.header("Authorization") == "Basic d2s6"
    assert req.header("X-Retry-Count") is None
    assert req.header("Connection") == "keep-alive"


def test_pre_encoded_messages_are_spliced_verbatim(server: ScriptedServer) -> None:
    raw = b'{"type":"track","n":1.0}'
    post("wk", server.url, batch=[raw, MSG])
    (req,) = server.wait_for(1)
    assert req.body.startswith(b'{"batch":[' + raw + b",")
    assert req.json()["batch"] == [{"type": "track", "n": 1.0}, MSG]


def test_retry_count_header(server: ScriptedServer) -> None:
    post("wk", server.url, retry_count=2, batch=[MSG])
    assert server.wait_for(1)[0].header("X-Retry-Count") == "2"


def test_trailing_slash_in_host(server: ScriptedServer) -> None:
    post("wk", server.url + "/", batch=[MSG])
    assert server.wait_for(1)[0].path == "/v1/batch"


def test_gzip_round_trip(server: ScriptedServer) -> None:
    post("wk", server.url, gzip=True, batch=[MSG] * 50)
    (req,) = server.wait_for(1)
    assert req.header("Content-Encoding") == "gzip"
    assert len(req.raw) < len(req.body)
    assert json.loads(gzip.decompress(req.raw))["batch"] == [MSG] * 50


@pytest.mark.parametrize("status", [200, 201, 202, 204])
def test_any_2xx_is_success(server: ScriptedServer, status: int) -> None:
    server.script(Reply(status, body=b""))
    assert post("wk", server.url, batch=[MSG]).status_code == status


def test_api_error_from_json_body(server: ScriptedServer) -> None:
    server.script(Reply(400, {"code": "invalid_request", "message": "bad"}))
    with pytest.raises(APIError) as info:
        post("wk", server.url, batch=[MSG])
    e = info.value
    assert str(e) == "[Segment] invalid_request: bad (400)"
    assert (e.status, e.code, e.message) == (400, "invalid_request", "bad")
    assert e.response is not None and e.response.status_code == 400
    assert e.args == (400, "invalid_request", "bad")


@pytest.mark.parametrize("body", [b"not json", [1, 2], "null", {"code": "c"}])
def test_api_error_unknown_body(server: ScriptedServer, body: object) -> None:
    server.script(Reply(502, body))  # type: ignore[arg-type]
    with pytest.raises(APIError) as info:
        post("wk", server.url, batch=[MSG])
    assert info.value.code == "unknown"
    assert info.value.status == 502


def test_redirect_is_an_error(server: ScriptedServer) -> None:
    server.script(Reply(304, b""))
    with pytest.raises(APIError) as info:
        post("wk", server.url, batch=[MSG])
    assert info.value.code == "redirect"


def test_proxies_are_used(server: ScriptedServer) -> None:
    # The scripted server plays the HTTP proxy: the request line carries the absolute URL.
    post("wk", "http://api.segment.invalid", proxies={"http": server.url}, batch=[MSG])
    (req,) = server.wait_for(1)
    assert req.path == "http://api.segment.invalid/v1/batch"


def test_timeout_is_applied(server: ScriptedServer) -> None:
    server.script(Reply(delay=1.0))
    with pytest.raises(requests.exceptions.ReadTimeout):
        post("wk", server.url, timeout=0.1, batch=[MSG])


def test_tls_verification_is_on_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    context = Session()._tls_context(True, None)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.get_ca_certs()  # certifi's bundle, as requests uses


def test_write_key_never_logged(server: ScriptedServer, caplog: pytest.LogCaptureFixture) -> None:
    secret = "wk-SECRET-123"
    server.script(Reply(200), Reply(500, {"code": "x", "message": "y"}))
    with caplog.at_level(logging.DEBUG):
        post(secret, server.url, batch=[MSG])
        with pytest.raises(APIError):
            post(secret, server.url, batch=[MSG])
    assert caplog.records
    assert secret not in caplog.text


def response_with(server: ScriptedServer, headers: dict[str, str]) -> requests.Response:
    server.script(Reply(429, headers=headers))
    return requests.get(server.url, timeout=5)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("30", 30), ("600", 300), ("0", 0), ("-5", 0), ("invalid", None), ("1.5", None), ("", None)],
)
def test_parse_retry_after_seconds(server: ScriptedServer, value: str, expected: object) -> None:
    assert parse_retry_after(response_with(server, {"Retry-After": value})) == expected


def test_parse_retry_after_dates(server: ScriptedServer) -> None:
    now = datetime.now(timezone.utc)
    past = format_datetime(now - timedelta(seconds=30), usegmt=True)
    soon = format_datetime(now + timedelta(seconds=2), usegmt=True)
    far = format_datetime(now + timedelta(hours=2), usegmt=True)
    assert parse_retry_after(response_with(server, {"Retry-After": past})) is None
    assert parse_retry_after(response_with(server, {"Retry-After": soon})) in (1, 2, 3)
    assert parse_retry_after(response_with(server, {"Retry-After": far})) == 300
    assert parse_retry_after(response_with(server, {})) is None
    assert parse_retry_after(None) is None


def test_proxy_environment_variables_are_honoured(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", server.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setattr(request, "_session", Session())  # environment is read at first use
    post("wk", "http://api.segment.invalid", batch=[MSG])
    assert server.wait_for(1)[0].path == "http://api.segment.invalid/v1/batch"


def test_tls_certificates_are_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    server = ScriptedServer(tls=server_context(cert, key))
    try:
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(request, "_session", Session())
        with pytest.raises(requests.exceptions.SSLError):
            post("wk", server.url, batch=[MSG])
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))  # now the certificate is trusted
        monkeypatch.setattr(request, "_session", Session())
        post("wk", server.url, batch=[MSG])
        assert server.messages() == [MSG]
    finally:
        server.close()


def test_proxy_credentials_are_sent(server: ScriptedServer) -> None:
    proxy = server.url.replace("http://", "http://user:s3cret@")
    post("wk", "http://api.segment.invalid", proxies={"http": proxy}, batch=[MSG])
    (req,) = server.wait_for(1)
    assert req.header("Proxy-Authorization") == "Basic " + b64encode(b"user:s3cret").decode()
