"""Who may talk to the collector: Host allow-list, Origin checks, CORS, the access token and
the security headers, byte for byte over loopback HTTP (the browser's view is in
test_hostile_page_browser.py)."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from segment_clone.collector import Collector

from ..api import Reply, call, post

EVIL = "https://evil.example"
JSON = {"Content-Type": "application/json"}
TRACK = {"type": "track", "userId": "ada", "event": "Signed Up", "messageId": "m1",
         "properties": {"email": "ada@example.com"}}  # fmt: skip


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Collector]:
    with Collector(tmp_path / "g.db", port=0, allowed_hosts=["dev.test"]).start() as running:
        assert post(running.url, "/v1/batch", {"batch": [TRACK]}).status == 200
        yield running


def own_origin(collector: Collector) -> str:
    return collector.url


def test_a_rebound_name_cannot_read_the_events(
    guarded: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, "segment_clone.collector"):
        refused = call(guarded.url, "GET", "/api/events", headers={"Host": "attacker.example:1"})
    assert refused.status == 403
    assert b"ada@example.com" not in refused.body
    assert refused.json()["code"] == "forbidden_host"
    assert "--allowed-host attacker.example" in caplog.text


@pytest.mark.parametrize(
    "host", ["localhost:1", "127.0.0.1", "[::1]:8787", "app.localhost", "DEV.test:9", "10.1.2.3"]
)
def test_loopback_names_ip_addresses_and_allowed_hosts_are_served(
    guarded: Collector, host: str
) -> None:
    assert call(guarded.url, "GET", "/api/stats", headers={"Host": host}).status == 200


def test_the_host_check_covers_ingestion_too(guarded: Collector) -> None:
    reply = call(guarded.url, "POST", "/v1/batch", b"{}", {**JSON, "Host": "attacker.example"})
    assert reply.status == 403
    assert guarded.store.count() == 1


def test_a_cross_site_request_cannot_reset_or_change_faults(guarded: Collector) -> None:
    plain = {"Origin": EVIL, "Content-Type": "text/plain"}
    assert call(guarded.url, "POST", "/api/reset", b"", plain).status == 403
    as_json = {**JSON, "Origin": EVIL}
    assert call(guarded.url, "POST", "/api/reset", b"{}", as_json).status == 403
    assert call(guarded.url, "POST", "/api/faults", b'{"fail_rate": 1}', as_json).status == 403
    assert call(guarded.url, "GET", "/api/events", headers={"Origin": EVIL}).status == 403
    assert guarded.store.count() == 1
    assert guarded.faults.settings.fail_rate == 0


def test_a_state_change_without_a_json_body_is_refused_even_without_origin(
    guarded: Collector,
) -> None:
    refused = call(guarded.url, "POST", "/api/reset", b"", {"Content-Type": "text/plain"})
    assert (refused.status, refused.json()["code"]) == (403, "json_required")
    assert guarded.store.count() == 1


def test_the_debugger_its_scripts_and_the_cli_still_work(guarded: Collector) -> None:
    same_origin = {**JSON, "Origin": own_origin(guarded)}
    assert call(guarded.url, "GET", "/api/stats", headers=same_origin).status == 200
    assert call(guarded.url, "POST", "/api/reset", b"", same_origin).status == 200
    assert guarded.store.count() == 0
    assert post(guarded.url, "/api/faults", {"delay_ms": 0}).status == 200


def test_ingestion_answers_cors_preflights_and_cross_origin_posts(guarded: Collector) -> None:
    for path in ("/v1/batch", "/v1/track", "/track", "/engage", "/groups", "/import"):
        preflight = call(
            guarded.url,
            "OPTIONS",
            path,
            headers={
                "Origin": "http://localhost:3000",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type, authorization",
            },
        )
        assert preflight.status == 204, path
        assert preflight.headers["access-control-allow-methods"] == "POST, OPTIONS"
        assert preflight.headers["access-control-allow-headers"] == "content-type, authorization"
    sent = {**TRACK, "messageId": "m2", "writeKey": "k"}
    reply = post(guarded.url, "/v1/track", sent, headers={"Origin": EVIL})
    assert reply.status == 200
    assert reply.headers["access-control-allow-origin"] == "*"
    assert guarded.store.count() == 2


def test_the_debuggers_api_answers_no_preflight(guarded: Collector) -> None:
    asked = {"Origin": EVIL, "Access-Control-Request-Method": "POST"}
    refused = call(guarded.url, "OPTIONS", "/api/reset", headers=asked)
    assert refused.status in (403, 405)
    assert "access-control-allow-origin" not in refused.headers


@pytest.mark.parametrize("path", ["/", "/api/events", "/v1/batch", "/nowhere"])
def test_every_answer_carries_the_security_headers(guarded: Collector, path: str) -> None:
    reply = call(guarded.url, "GET", path)
    assert reply.headers["x-content-type-options"] == "nosniff"
    assert reply.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]


def test_any_method_gets_a_4xx_and_head_gets_no_body(guarded: Collector) -> None:
    for method in ("PUT", "DELETE", "PATCH", "BREW"):
        assert call(guarded.url, method, "/api/events").status == 405, method
    head = call(guarded.url, "HEAD", "/api/events")
    assert (head.status, head.body) == (405, b"")


@pytest.fixture
def tokened(tmp_path: Path) -> Iterator[Collector]:
    with Collector(tmp_path / "t.db", port=0, token="s3cret-token").start() as running:
        yield running


def test_with_a_token_the_debugger_needs_it_and_ingestion_does_not(tokened: Collector) -> None:
    assert post(tokened.url, "/v1/batch", {"batch": [TRACK]}).status == 200
    refused = call(tokened.url, "GET", "/api/events")
    assert (refused.status, b"ada@example.com" in refused.body) == (401, False)
    assert call(tokened.url, "GET", "/").status == 401
    assert call(tokened.url, "GET", "/api/events?token=wrong").status == 401
    assert call(tokened.url, "GET", "/api/events?token=s3cret-token").status == 200
    bearer = {"Authorization": "Bearer s3cret-token"}
    assert call(tokened.url, "GET", "/api/events", headers=bearer).status == 200


def test_the_page_keeps_its_token_in_a_cookie_not_in_the_address(tokened: Collector) -> None:
    opened: Reply = call(tokened.url, "GET", "/?token=s3cret-token")
    assert (opened.status, opened.headers["location"]) == (303, "/")
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = {"Cookie": cookie.partition(";")[0]}
    assert call(tokened.url, "GET", "/", headers=jar).status == 200
    assert call(tokened.url, "GET", "/api/stats", headers=jar).status == 200


def test_an_empty_token_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="token"):
        Collector(tmp_path / "e.db", port=0, token="")


@pytest.mark.parametrize(
    "line", [b"GET / HTTP/2.0", b"GET / HTTP/1.1.1", b"\x16\x03\x01 / HTTP/1.1"]
)
def test_a_malformed_request_line_gets_a_4xx(guarded: Collector, line: bytes) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as sock:
        sock.sendall(line + b"\r\nHost: localhost\r\n\r\n")
        answer = sock.recv(65536)
    # a status line, or (for a version it does not speak) http.server's page without one
    assert re.match(rb"HTTP/1\.1 4\d\d |.*Error code: 4\d\d", answer, re.DOTALL), answer
