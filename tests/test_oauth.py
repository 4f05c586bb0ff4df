"""OAuth client-assertion tokens against real loopback token and batch servers."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any, Callable
from urllib.parse import parse_qs

import jwt
import pytest

from segment_clone import Client
from segment_clone.errors import FatalError
from segment_clone.oauth_manager import OauthManager

from .server import Reply, ScriptedServer, wait_until

MakeClient = Callable[..., Client]


@pytest.fixture
def token_server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    srv.default = Reply(200, {"access_token": "tok-1", "expires_in": 3600})
    yield srv
    srv.close()


@pytest.fixture
def oauth_client(
    make_client: MakeClient, token_server: ScriptedServer, key_pair: tuple[str, str]
) -> Callable[..., Client]:
    def make(**kwargs: Any) -> Client:
        return make_client(
            oauth_client_id="client-1",
            oauth_client_key=key_pair[0],
            oauth_key_id="kid-1",
            oauth_auth_server=token_server.url + "/",
            **kwargs,
        )

    return make


def form(req: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(req.body.decode()).items()}


def test_happy_path(
    server: ScriptedServer,
    token_server: ScriptedServer,
    oauth_client: Callable[..., Client],
    key_pair: tuple[str, str],
) -> None:
    client = oauth_client()
    client.track("u", "e")
    assert client.flush(timeout=20) == 0
    (token_req,) = token_server.requests
    assert token_req.path == "/token"
    assert token_req.header("Content-Type") == "application/x-www-form-urlencoded"
    fields = form(token_req)
    assert fields["grant_type"] == "client_credentials"
    assert fields["client_assertion_type"] == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    assert fields["scope"] == "tracking_api:write"
    assertion = fields["client_assertion"]
    header = jwt.get_unverified_header(assertion)
    assert header["alg"] == "RS256" and header["kid"] == "kid-1"
    claims = jwt.decode(assertion, key_pair[1], algorithms=["RS256"], audience=token_server.url)
    assert claims["iss"] == claims["sub"] == "client-1"
    assert claims["exp"] - claims["iat"] == 60
    assert uuid.UUID(claims["jti"]).version == 4
    (batch_req,) = server.requests
    assert batch_req.header("Authorization") == "Bearer tok-1"


def test_refresh_before_expiry(
    server: ScriptedServer, token_server: ScriptedServer, oauth_client: Callable[..., Client]
) -> None:
    token_server.script(
        Reply(200, {"access_token": "tok-1", "expires_in": 2}),
        Reply(200, {"access_token": "tok-2", "expires_in": 3600}),
    )
    client = oauth_client()
    client.track("u", "first")
    client.flush(timeout=20)
    token_server.wait_for(2)  # refreshed at half of expires_in, before tok-1 expired
    manager = client.oauth_manager
    assert manager is not None
    wait_until(lambda: manager.get_token() == "tok-2")
    client.track("u", "second")
    client.flush(timeout=20)
    assert [r.header("Authorization") for r in server.requests] == ["Bearer tok-1", "Bearer tok-2"]


def test_token_endpoint_errors_then_recovers(
    server: ScriptedServer, token_server: ScriptedServer, oauth_client: Callable[..., Client]
) -> None:
    token_server.script(Reply(500), Reply(503), Reply(502))
    client = oauth_client()
    client.track("u", "e")
    assert client.flush(timeout=30) == 0
    reqs = token_server.requests
    assert len(reqs) == 4
    gaps = [b.at - a.at for a, b in zip(reqs, reqs[1:])]
    assert gaps[1] >= 0.45 and gaps[2] >= 0.9, f"token retries must back off: {gaps}"
    assert server.requests[-1].header("Authorization") == "Bearer tok-1"


def test_token_endpoint_rate_limited(
    server: ScriptedServer, token_server: ScriptedServer, oauth_client: Callable[..., Client]
) -> None:
    token_server.script(Reply(429, headers={"Retry-After": "1"}))
    client = oauth_client()
    client.track("u", "e")
    assert client.flush(timeout=30) == 0
    first, second = token_server.requests
    assert second.at - first.at >= 1.0


def test_unreadable_key_is_fatal_and_reported(
    make_client: MakeClient, token_server: ScriptedServer
) -> None:
    errors: list[tuple[BaseException, list[dict[str, Any]]]] = []
    client = make_client(
        oauth_client_id="client-1",
        oauth_client_key="-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----",
        oauth_key_id="kid-1",
        oauth_auth_server=token_server.url,
        on_error=lambda e, b: errors.append((e, b)),
    )
    client.track("u", "e")
    assert client.flush(timeout=20) == 0
    ((exc, batch),) = errors
    assert isinstance(exc, FatalError) and len(batch) == 1
    assert token_server.requests == []
    assert client.stats()["dropped"] == {"fatal": 1}
    client.track("u", "again")  # a later batch is reported at once, not after a wait
    assert client.flush(timeout=20) == 0
    assert len(errors) == 2


def test_token_endpoint_refusal_is_fatal(
    server: ScriptedServer, token_server: ScriptedServer, oauth_client: Callable[..., Client]
) -> None:
    errors: list[BaseException] = []
    token_server.default = Reply(401, {"error": "invalid_client", "error_description": "no"})
    client = oauth_client(on_error=lambda e, b: errors.append(e))
    client.track("u", "e")
    assert client.flush(timeout=20) == 0
    assert [type(e) for e in errors] == [FatalError]
    assert len(token_server.requests) == 1
    assert server.requests == []


def test_401_from_the_api_refreshes_once(
    server: ScriptedServer, token_server: ScriptedServer, oauth_client: Callable[..., Client]
) -> None:
    token_server.script(
        Reply(200, {"access_token": "tok-1", "expires_in": 3600}),
        Reply(200, {"access_token": "tok-2", "expires_in": 3600}),
    )
    server.script(Reply(401, {"code": "unauthorized", "message": "expired"}))
    client = oauth_client()
    client.track("u", "e")
    assert client.flush(timeout=20) == 0
    assert [r.header("Authorization") for r in server.requests] == ["Bearer tok-1", "Bearer tok-2"]
    assert client.stats()["delivered"] == 1


def test_511_is_retried_with_oauth(
    server: ScriptedServer, oauth_client: Callable[..., Client], waits: list[float]
) -> None:
    server.script(Reply(511))
    client = oauth_client()
    client.track("u", "e")
    assert client.flush(timeout=20) == 0
    assert len(server.requests) == 2


def test_three_consumers_share_one_fetch(
    server: ScriptedServer, token_server: ScriptedServer, oauth_client: Callable[..., Client]
) -> None:
    hold = threading.Event()
    token_server.script(Reply(200, {"access_token": "tok-1", "expires_in": 3600}, hold=hold))
    client = oauth_client(thread=3, upload_size=5)
    for i in range(60):
        client.track("u", "e", {"i": i})
    token_server.wait_for(1)
    hold.set()
    assert client.flush(timeout=20) == 0
    assert len(token_server.requests) == 1
    assert len(server.requests) >= 3
    assert {r.header("Authorization") for r in server.requests} == {"Bearer tok-1"}


def test_secrets_never_logged_or_shown(
    server: ScriptedServer,
    token_server: ScriptedServer,
    oauth_client: Callable[..., Client],
    key_pair: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    token_server.script(Reply(500, {"error": "x"}))
    token_server.default = Reply(200, {"access_token": "tok-SECRET", "expires_in": 3600})
    with caplog.at_level(logging.DEBUG):
        client = oauth_client(debug=True)
        client.track("u", "e")
        client.flush(timeout=20)
    assert caplog.records
    assert "tok-SECRET" not in caplog.text
    assert "PRIVATE KEY" not in caplog.text
    manager = client.oauth_manager
    assert manager is not None
    assert "tok-SECRET" not in repr(manager) and "PRIVATE" not in repr(manager)


def test_clock_skew_from_the_date_header(
    token_server: ScriptedServer, key_pair: tuple[str, str]
) -> None:
    token_server.script(
        Reply(
            200,
            {"access_token": "t", "expires_in": 3600},
            headers={"Date": "Mon, 01 Jan 2035 00:00:00 GMT"},
        )
    )
    manager = OauthManager("c", key_pair[0], "k", token_server.url, timeout=10)
    assert manager.get_token() == "t"
    assert manager.clock_skew < -200_000_000  # the server's clock is years ahead
    manager.stop()
