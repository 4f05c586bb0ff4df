"""The synchronous consumers under ``responses``, as applications test them: they send on the
caller's thread through a ``requests.Session`` (which ``responses`` intercepts, so nothing is
sent anywhere), with upstream's form, and raise ``MixpanelException``."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qsl

import pytest
import responses

from segment_clone.mixpanel import (
    BufferedConsumer,
    Consumer,
    Mixpanel,
    MixpanelException,
    ServiceAccountCredentials,
)

TRACK = "https://api.mixpanel.com/track"
IMPORT = "https://api.mixpanel.com/import"
OK = {"status": 1, "error": None}


def form(call: responses.Call) -> dict[str, str]:
    body = call.request.body
    text = body.decode() if isinstance(body, bytes) else str(body)
    return dict(parse_qsl(text))


@responses.activate
def test_default_consumer_posts_upstreams_form_on_the_callers_thread() -> None:
    responses.add(responses.POST, TRACK, json=OK)
    mp = Mixpanel("tok")
    mp.track("u1", "Café", {"n": 1})  # returns only once the answer is in
    [call] = responses.calls
    fields = form(call)
    assert (fields["verbose"], fields["ip"]) == ("1", "0")
    sent = json.loads(fields["data"])
    assert (sent["event"], sent["properties"]["n"]) == ("Café", 1)
    assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"


@responses.activate
@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ({"json": {"status": 0, "error": "bad token"}}, "Mixpanel error: bad token"),
        ({"body": "not json"}, "Cannot interpret Mixpanel server response: not json"),
        ({"json": {"status": 0}}, "Mixpanel error"),
    ],
)
def test_error_answers_raise_mixpanel_exception(answer: dict[str, object], message: str) -> None:
    responses.add(responses.POST, TRACK, status=200, **answer)  # type: ignore[arg-type]
    with pytest.raises(MixpanelException, match=message):
        Consumer().send("events", '{"event":"e"}')


@responses.activate
def test_buffered_consumer_batches_and_keeps_a_failed_batch() -> None:
    responses.add(responses.POST, TRACK, json=OK)
    responses.add(responses.POST, TRACK, json={"status": 0, "error": "down"})
    responses.add(responses.POST, TRACK, json=OK)
    consumer = BufferedConsumer()
    for i in range(99):
        consumer.send("events", json.dumps({"n": i}))  # the 50th posts
    with pytest.raises(MixpanelException, match="down") as raised:
        consumer.send("events", json.dumps({"n": 99}))  # the 100th posts, and is refused
    assert raised.value.endpoint == "events"
    assert [m["n"] for m in json.loads(raised.value.message)] == list(range(50, 100))
    consumer.flush()  # the refused batch stayed buffered
    batches = [json.loads(form(c)["data"]) for c in responses.calls]
    assert [len(b) for b in batches] == [50, 50, 50]
    assert batches[1] == batches[2]  # the failed batch, sent again; the first one never


@responses.activate
def test_service_account_import() -> None:
    responses.add(responses.POST, IMPORT, json=OK)
    consumer = Consumer(credentials=ServiceAccountCredentials("user", "secret", "42"))
    Mixpanel("tok", consumer).import_data(None, "u1", "Old", 1.6e9)
    [call] = responses.calls
    assert call.request.url == f"{IMPORT}?project_id=42"
    expected = "Basic " + base64.b64encode(b"user:secret").decode()
    assert call.request.headers["Authorization"] == expected
    assert json.loads(form(call)["data"])["event"] == "Old"


@responses.activate
def test_a_transport_failure_raises_mixpanel_exception() -> None:
    responses.add(responses.POST, TRACK, body=ConnectionError("refused"))
    with pytest.raises(MixpanelException, match="refused"):
        Mixpanel("tok").track("u1", "e")
