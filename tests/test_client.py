"""Client: message construction, validation and return values (no network needed)."""

from __future__ import annotations

import copy
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from segment_clone import Client

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture
def c() -> Client:
    return Client("wk", send=False)


def test_constructor_validation() -> None:
    with pytest.raises(AssertionError, match="write_key must have str, got: None"):
        Client()
    with pytest.raises(AssertionError, match=r"write_key must have str, got: 5 \(int\)"):
        Client(5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_total_backoff_duration"):
        Client("wk", max_total_backoff_duration=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_rate_limit_duration"):
        Client("wk", max_rate_limit_duration=-1)
    for bad in (
        {"max_queue_size": 0},
        {"thread": 0},
        {"upload_size": 0},
        {"upload_interval": 0},
        {"timeout": -1},
        {"max_retries": -1},
        {"shutdown_timeout": -1},
        {"host": "api.segment.io"},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            Client("wk", **bad)  # type: ignore[arg-type]
    with pytest.raises(AssertionError, match="on_error must be callable"):
        Client("wk", on_error="nope")  # type: ignore[arg-type]


def test_defaults_match_segment_analytics() -> None:
    c = Client("wk")
    assert c.queue.maxsize == 10000
    assert c.consumers is not None and len(c.consumers) == 1
    consumer = c.consumers[0]
    assert consumer.timeout == 15
    assert consumer.retries == 10
    assert consumer.upload_size == 100
    assert consumer.upload_interval == 0.5
    assert consumer.max_total_backoff_duration == 43200
    assert consumer.max_rate_limit_duration == 1800
    assert consumer.gzip is False
    assert c.host is None and c.send is True and c.sync_mode is False
    assert not consumer.is_alive()  # threads start at the first message


def test_track_message(c: Client) -> None:
    ok, msg = c.track("u", "e")
    assert ok is True
    assert msg["type"] == "track"
    assert msg["event"] == "e"
    assert msg["userId"] == "u"
    assert msg["anonymousId"] is None
    assert msg["properties"] == {}
    assert msg["integrations"] == {}
    assert msg["context"]["library"] == {"name": "analytics-python", "version": "2.4.0"}
    assert UUID4.match(msg["messageId"])
    assert "sentAt" not in msg and "writeKey" not in msg
    assert list(msg) == [
        "integrations", "anonymousId", "properties", "timestamp", "context", "userId", "type",
        "event", "messageId",
    ]  # fmt: skip


def test_timestamps(c: Client) -> None:
    _, msg = c.track("u", "e", timestamp=datetime(2014, 9, 3))
    assert msg["timestamp"] == "2014-09-03T00:00:00.000+00:00"
    aware = datetime(2014, 9, 3, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=2)))
    _, msg = c.track("u", "e", timestamp=aware)
    assert msg["timestamp"] == "2014-09-03T01:02:03.456+02:00"
    _, msg = c.track("u", "e")
    sent = datetime.fromisoformat(msg["timestamp"])
    assert abs((datetime.now(timezone.utc) - sent).total_seconds()) < 60
    assert re.search(r"\.\d{3}\+00:00$", msg["timestamp"])


def test_ids_are_stringified(c: Client) -> None:
    _, msg = c.track(user_id=157963456373623802, event="x")
    assert msg["userId"] == "157963456373623802"
    _, msg = c.track("u", "e", message_id=123)
    assert msg["messageId"] == "123"
    anon = uuid.uuid4()
    _, msg = c.track(anonymous_id=anon, event="x")
    assert msg["anonymousId"] == str(anon) and msg["userId"] is None


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda c: c.track(None, "e"), "user_id or anonymous_id"),
        (lambda c: c.track(0, "e"), "user_id or anonymous_id"),
        (lambda c: c.track("u", None), "event must have str, got: None"),
        (lambda c: c.track("u", "e", properties=[1]), r"properties must have dict, got: \[1\]"),
        (lambda c: c.track("u", "e", timestamp="2020-01-01"), "timestamp must have datetime"),
        (lambda c: c.track("u", "e", context="x"), "context must have dict"),
        (lambda c: c.track("u", "e", integrations=["x"]), "integrations must have dict"),
        (lambda c: c.page("u", name=5), "name must have str"),
        (lambda c: c.screen("u", category=5), "category must have str"),
        (lambda c: c.alias("p", None), "user_id must have"),
        (lambda c: c.alias(None, "u"), "previous_id must have"),
        (lambda c: c.group("u", None), "group_id must have"),
        (lambda c: c.identify("u", traits="t"), "traits must have dict"),
        (lambda c: c.identify(), "user_id or anonymous_id"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(c: Client, call: object, argument: str) -> None:
    with pytest.raises(AssertionError, match=argument):
        call(c)  # type: ignore[operator]


def test_identify_group_alias_page_screen_shapes(c: Client) -> None:
    _, m = c.identify("u", {"email": "a@b.c"})
    assert (m["type"], m["traits"]) == ("identify", {"email": "a@b.c"})
    _, m = c.group("u", "g1", {"name": "Acme"})
    assert (m["type"], m["groupId"], m["traits"]) == ("group", "g1", {"name": "Acme"})
    _, m = c.alias("prev", "u")
    assert (m["type"], m["previousId"], m["userId"], m["anonymousId"]) == (
        "alias", "prev", "u", None,
    )  # fmt: skip
    _, m = c.page("u", "Docs", "Install", {"path": "/install"})
    assert (m["type"], m["category"], m["name"], m["properties"]) == (
        "page", "Docs", "Install", {"path": "/install"},
    )  # fmt: skip
    _, m = c.screen("u", name="Home")
    assert (m["type"], m["name"], m["category"]) == ("screen", "Home", None)


def test_caller_dicts_are_never_mutated(c: Client) -> None:
    props = {"a": [1, {"b": 2}]}
    context = {"ip": "1.2.3.4", "library": {"name": "mine"}}
    integrations = {"All": False}
    before = copy.deepcopy((props, context, integrations))
    _, msg = c.track("u", "e", props, context=context, integrations=integrations)
    assert (props, context, integrations) == before
    assert msg["context"]["ip"] == "1.2.3.4"
    assert msg["context"]["library"]["name"] == "analytics-python"


def test_oversize_message_raises_and_is_not_queued() -> None:
    c = Client("wk", host="http://127.0.0.1:9")
    with pytest.raises(RuntimeError, match="exceeds 32kb limit"):
        c.track("u", "e", {"blob": "x" * 33000})
    assert c.queue.qsize() == 0
    assert c.stats()["enqueued"] == 0


def test_send_false_queues_nothing() -> None:
    c = Client("wk", send=False)
    assert c.track("u", "e")[0] is True
    assert c.queue.qsize() == 0
    assert c.flush() == 0
    assert c.join() == 0
    assert c.shutdown() == 0
    assert c.consumers is not None and not any(x.is_alive() for x in c.consumers)
