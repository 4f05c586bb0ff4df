"""The synchronous Consumer against a loopback server (A16-A23, A25): form, endpoints, auth,
response checks and urllib3 retries."""

from __future__ import annotations

import base64
import json
import re
import socket
from typing import Any

import pytest
import requests

import segment_clone.mixpanel.client as client_module
from segment_clone.mixpanel import Consumer, Mixpanel, MixpanelException, ServiceAccountCredentials

from ..server import Reply, ScriptedServer
from .conftest import OK, Log, Sleeps, data, form, route


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_a17_form_fields_and_endpoints(mp_server: ScriptedServer) -> None:
    consumer = Consumer(api_host=mp_server.url)
    assert consumer.send("events", '{"foo":"bar"}') is None
    for endpoint in ("people", "groups", "imports"):
        consumer.send(endpoint, "[1]")
    first = mp_server.requests[0]
    assert form(first) == {"data": '{"foo":"bar"}', "verbose": "1", "ip": "0"}
    assert first.body.decode().startswith("data=")
    assert first.header("content-type") == "application/x-www-form-urlencoded"
    assert first.header("authorization") is None
    assert [r.path for r in mp_server.requests] == ["/track", "/engage", "/groups", "/import"]


def test_a18_residency_host_and_explicit_urls(mp_server: ScriptedServer) -> None:
    consumer = Consumer(api_host="api-eu.mixpanel.com")
    eu = route(consumer, "api-eu.mixpanel.com", mp_server)
    consumer.send("events", "{}")
    consumer.send("people", "{}")
    assert eu.urls == ["https://api-eu.mixpanel.com/track", "https://api-eu.mixpanel.com/engage"]

    explicit = Consumer(events_url=f"{mp_server.url}/custom", api_host="api-in.mixpanel.com")
    explicit.send("events", "{}")
    assert mp_server.requests[-1].path == "/custom"
    assert explicit._endpoints["imports"] == "https://api-in.mixpanel.com/import"


def test_api_host_accepts_a_base_url(mp_server: ScriptedServer) -> None:
    Consumer(api_host=mp_server.url + "/").send("groups", "{}")
    assert mp_server.wait_for(1)[0].path == "/groups"


def test_a19_unknown_endpoint() -> None:
    with pytest.raises(MixpanelException, match='No such endpoint "bogus"') as e:
        Consumer().send("bogus", "1")
    assert "dict_keys(['events', 'people', 'groups', 'imports'])" in str(e.value)


@pytest.mark.parametrize("status", [200, 401, 403])
def test_a20_error_status_in_body(mp_server: ScriptedServer, status: int) -> None:
    mp_server.script(Reply(status, {"status": 0, "error": "bad data"}))
    with pytest.raises(MixpanelException, match="bad data") as e:
        Consumer(api_host=mp_server.url).send("events", "{}")
    assert str(e.value) == "Mixpanel error: bad data"


@pytest.mark.parametrize("body", ["not json", "1", "[1]", '"x"'])
def test_a20_uninterpretable_body(mp_server: ScriptedServer, body: str) -> None:
    mp_server.script(Reply(200, body))
    with pytest.raises(MixpanelException) as e:
        Consumer(api_host=mp_server.url).send("events", "{}")
    assert str(e.value) == f"Cannot interpret Mixpanel server response: {body}"


def test_missing_error_key_is_a_mixpanel_exception(mp_server: ScriptedServer) -> None:
    mp_server.script(Reply(200, {"status": 0}))
    with pytest.raises(MixpanelException, match=re.escape('Mixpanel error: {"status": 0}')):
        Consumer(api_host=mp_server.url).send("events", "{}")


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a20_connection_refused(retry_sleeps: Sleeps) -> None:
    consumer = Consumer(api_host=f"http://127.0.0.1:{unused_port()}")
    with pytest.raises(MixpanelException) as e:
        consumer.send("events", "{}")
    assert isinstance(e.value.__cause__, requests.ConnectionError)
    assert retry_sleeps == [0.5, 1.0, 2.0]  # retried on http:// too: 4 retries, urllib3 backoff


def test_a21_5xx_retried_then_raises(mp_server: ScriptedServer, retry_sleeps: Sleeps) -> None:
    mp_server.default = Reply(500, "oops")
    with pytest.raises(MixpanelException, match="too many 500 error responses") as e:
        Consumer(api_host=mp_server.url).send("events", "{}")
    assert isinstance(e.value.__cause__, requests.exceptions.RetryError)
    assert len(mp_server.requests) == 5
    assert all(form(r)["data"] == "{}" for r in mp_server.requests)
    assert retry_sleeps == [0.5, 1.0, 2.0]


def test_a21_retry_limit_zero(mp_server: ScriptedServer) -> None:
    mp_server.default = Reply(500, "oops")
    with pytest.raises(MixpanelException):
        Consumer(api_host=mp_server.url, retry_limit=0).send("events", "{}")
    assert len(mp_server.requests) == 1


def test_a21_502_then_200(mp_server: ScriptedServer, retry_sleeps: Sleeps) -> None:
    mp_server.script(Reply(502, "bad gateway"))
    Consumer(api_host=mp_server.url).send("events", "{}")
    assert len(mp_server.requests) == 2
    assert retry_sleeps == []  # the first retry is immediate


def test_a21_429_without_retry_after_is_not_retried(mp_server: ScriptedServer) -> None:
    mp_server.script(Reply(429, "slow down"))
    with pytest.raises(MixpanelException, match=r"^Cannot interpret Mixpanel server response"):
        Consumer(api_host=mp_server.url).send("events", "{}")
    assert len(mp_server.requests) == 1


def test_429_with_retry_after_is_honoured(mp_server: ScriptedServer, retry_sleeps: Sleeps) -> None:
    mp_server.script(Reply(429, "slow down", {"Retry-After": "7"}))
    Consumer(api_host=mp_server.url).send("events", "{}")
    assert len(mp_server.requests) == 2
    assert retry_sleeps == [7.0]


def test_a22_legacy_auth(mp_server: ScriptedServer) -> None:
    consumer = Consumer(api_host=mp_server.url)
    consumer.send("imports", "[]", ("K", "S"))
    consumer.send("imports", "[]", api_key="K", api_secret="S")
    consumer.send("imports", "[]", ("K", None))
    consumer.send("imports", "[]", (None, "S"))
    with_key, keyword, key_only, secret_only = mp_server.requests
    for rec in (with_key, keyword):
        assert rec.header("authorization") == basic("S", "")
        assert form(rec) == {"data": "[]", "verbose": "1", "ip": "0", "api_key": "K"}
    # api_key without a secret is not sent (the 5.x behaviour; /import no longer accepts it)
    assert key_only.header("authorization") is None
    assert "api_key" not in form(key_only)
    assert secret_only.header("authorization") == basic("S", "")
    assert "api_key" not in form(secret_only)


def test_a23_service_account(mp_server: ScriptedServer) -> None:
    consumer = Consumer(credentials=ServiceAccountCredentials("u", "s", "42"))
    routed = route(consumer, "api.mixpanel.com", mp_server)
    consumer.send("imports", "[]", ("K", "S"))
    imported = mp_server.requests[0]
    assert routed.urls == ["https://api.mixpanel.com/import?project_id=42"]
    assert imported.header("authorization") == basic("u", "s")
    assert "api_key" not in form(imported)
    for endpoint in ("events", "people", "groups"):
        consumer.send(endpoint, "{}", ("K", None))
    for rec in mp_server.requests[1:]:
        assert rec.header("authorization") is None
        assert "?" not in rec.path


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("", "s", "1"), ValueError, "Service account username cannot be empty"),
        (("u", "   ", "1"), ValueError, "Service account secret cannot be empty"),
        (("u", "s", 42), TypeError, "Service account project_id must be a string"),
        ((None, "s", "1"), TypeError, "Service account username must be a string"),
    ],
)
def test_a25_credentials_validation(args: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ServiceAccountCredentials(*args)


def test_a25_credentials_values_and_repr() -> None:
    creds = ServiceAccountCredentials(" u ", " top-secret\n", " 42 ")
    assert (creds.username, creds.secret, creds.project_id) == ("u", "top-secret", "42")
    assert repr(creds) == "ServiceAccountCredentials(username='u', project_id='42', secret='***')"
    auth = creds.to_http_basic_auth()
    assert isinstance(auth, requests.auth.HTTPBasicAuth)
    assert (auth.username, auth.password) == ("u", "top-secret")


ALIAS = {
    "event": "$create_alias",
    "properties": {"distinct_id": "ORIG", "alias": "ALIAS", "token": "12345"},
}


class RoutedConsumer(Consumer):
    """A real ``Consumer`` whose https://api.mixpanel.com requests land on the loopback server."""

    server: ScriptedServer
    made: list[RoutedConsumer]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.routed = route(self, "api.mixpanel.com", self.server)
        self.made.append(self)


@pytest.fixture
def routed(mp_server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> list[RoutedConsumer]:
    """Every ``Consumer()`` that ``Mixpanel.alias`` builds, routed to the scripted server."""
    made: list[RoutedConsumer] = []
    monkeypatch.setattr(RoutedConsumer, "server", mp_server, raising=False)
    monkeypatch.setattr(RoutedConsumer, "made", made, raising=False)
    monkeypatch.setattr(client_module, "Consumer", RoutedConsumer)
    return made


def test_a16_alias_uses_a_fresh_default_consumer(
    routed: list[RoutedConsumer], mp_server: ScriptedServer, log: Log
) -> None:
    mp = Mixpanel("12345", consumer=log, credentials=ServiceAccountCredentials("u", "s", "1"))
    mp.alias("ALIAS", "ORIG")
    mp.alias("ALIAS2", "ORIG", meta={"x": 1})
    assert log.calls == []
    assert len(routed) == 2  # a brand-new Consumer per call
    assert [c.routed.urls for c in routed] == [["https://api.mixpanel.com/track"]] * 2
    rec = mp_server.requests[0]
    compact = json.dumps(ALIAS, separators=(",", ":"))
    assert form(rec) == {"data": compact, "verbose": "1", "ip": "0"}
    assert rec.header("authorization") is None
    assert data(mp_server.requests[1])["x"] == 1


def test_alias_uses_consumer_opt_in(routed: list[RoutedConsumer], log: Log) -> None:
    mp = Mixpanel("12345", consumer=log, alias_uses_consumer=True)
    mp.alias("ALIAS", "ORIG")
    assert routed == []
    assert log.calls == [("events", ALIAS, None)]
    assert log.arg_counts == [2]


def test_alias_opt_in_follows_the_residency_host(mp_server: ScriptedServer) -> None:
    eu = Consumer(api_host="api-eu.mixpanel.com")
    routed = route(eu, "api-eu.mixpanel.com", mp_server)
    Mixpanel("12345", eu, alias_uses_consumer=True).alias("A", "O")
    assert routed.urls == ["https://api-eu.mixpanel.com/track"]


def test_mixpanel_with_default_consumer_end_to_end(mp_server: ScriptedServer) -> None:
    mp = Mixpanel("12345", Consumer(api_host=mp_server.url))
    mp.track("ID", "e", {"a": 1})
    mp.people_set("ID", {"b": 2})
    assert [r.path for r in mp_server.requests] == ["/track", "/engage"]
    assert data(mp_server.requests[0])["properties"]["a"] == 1
    assert OK.body == {"status": 1, "error": None}
