"""BufferedConsumer (A19, A26-A32): batching, per-message auth, and flush failures that
neither lose nor re-send messages."""

from __future__ import annotations

import json
from typing import Any

import pytest

from segment_clone.mixpanel import BufferedConsumer, Mixpanel, MixpanelException

from ..server import Reply, ScriptedServer
from .conftest import OK, data


class Inner:
    """Stands in for the inner Consumer, with the HEAD test's signature (no ``api_secret``)."""

    def __init__(self, fail_on: set[int] | None = None) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.fail_on = fail_on or set()

    def send(self, endpoint: str, json_message: str, api_key: Any = None) -> None:
        self.calls.append((endpoint, json_message, api_key))
        if len(self.calls) in self.fail_on:
            raise MixpanelException("boom")


def buffered(*args: Any, **kwargs: Any) -> tuple[BufferedConsumer, Inner]:
    consumer = BufferedConsumer(*args, **kwargs)
    inner = Inner()
    consumer._consumer = inner  # type: ignore[assignment]
    return consumer, inner


def test_a26_batches_at_max_size_then_flush() -> None:
    consumer, inner = buffered(10)
    messages = [json.dumps({"n": i}) for i in range(1, 14)]
    for m in messages[:9]:
        consumer.send("events", m)
    assert inner.calls == []
    consumer.send("events", messages[9])
    assert inner.calls == [("events", "[" + ",".join(messages[:10]) + "]", (None, None))]
    for m in messages[10:]:
        consumer.send("events", m)
    consumer.flush()
    consumer.flush()  # nothing left: sends nothing
    assert inner.calls[1:] == [("events", "[" + ",".join(messages[10:]) + "]", (None, None))]


def test_a19_unknown_endpoint_raises_on_send() -> None:
    consumer, inner = buffered()
    with pytest.raises(MixpanelException, match="bogus"):
        consumer.send("bogus", "1")
    assert inner.calls == []


def test_flush_order_is_events_people_groups_imports() -> None:
    consumer, inner = buffered()
    for endpoint in ("imports", "groups", "people", "events"):
        consumer.send(endpoint, "{}")
    consumer.flush()
    assert [c[0] for c in inner.calls] == ["events", "people", "groups", "imports"]


def test_a27_max_size_is_capped_at_50_unless_imports_ask_for_more() -> None:
    assert BufferedConsumer(200)._max_size == 50
    consumer, inner = buffered(200)
    for _ in range(50):
        consumer.send("imports", "{}")
    assert len(inner.calls) == 1

    big, inner = buffered(200, import_max_size=5000)
    assert big._import_max_size == 2000
    for _ in range(2000):
        big.send("imports", "{}")
    for _ in range(50):
        big.send("events", "{}")
    sizes = [(c[0], len(json.loads(c[1]))) for c in inner.calls]
    assert sizes == [("imports", 2000), ("events", 50)]


def test_a28_auth_from_either_calling_style() -> None:
    consumer, inner = buffered()
    consumer.send("imports", '"a"', api_key="K")
    consumer.send("imports", '"b"', api_secret="S")
    consumer.send("imports", '"c"', (None, "S"))
    consumer.flush()
    assert inner.calls == [
        ("imports", '["a"]', ("K", None)),
        ("imports", '["b","c"]', (None, "S")),
    ]


def test_a31_auth_is_kept_per_message() -> None:
    consumer, inner = buffered()
    mp = Mixpanel("12345", consumer)
    mp.import_data(None, "ID", "old", 1.0, api_secret="S")
    mp.track("ID", "new")
    mp.import_data(None, "ID", "older", 0.5, api_secret="T")
    consumer.flush()
    assert [(c[0], c[2]) for c in inner.calls] == [
        ("events", (None, None)),
        ("imports", (None, "S")),
        ("imports", (None, "T")),
    ]


@pytest.mark.parametrize("size", [0, -1])
def test_a32_non_positive_sizes_are_refused(size: int) -> None:
    with pytest.raises(ValueError, match="max_size must be at least 1"):
        BufferedConsumer(size)
    with pytest.raises(ValueError, match="import_max_size must be at least 1"):
        BufferedConsumer(import_max_size=size)


def test_a29_flush_failure_carries_the_batch_and_endpoint(mp_server: ScriptedServer) -> None:
    mp_server.default = Reply(200, {"status": 0, "error": "arbitrary error"})
    consumer = BufferedConsumer(2, api_host=mp_server.url)
    consumer.send("events", "{broken JSON")
    with pytest.raises(MixpanelException) as e:
        consumer.flush()
    assert e.value.message == "[{broken JSON]"
    assert e.value.endpoint == "events"
    assert str(e.value) == "Mixpanel error: arbitrary error"
    assert isinstance(e.value.__cause__, MixpanelException)


def test_a30_partial_failure_keeps_only_undelivered_messages(mp_server: ScriptedServer) -> None:
    failure = Reply(200, {"status": 0, "error": "try later"})
    mp_server.script(failure, OK, failure, OK)
    consumer = BufferedConsumer(2, api_host=mp_server.url)
    consumer.send("events", '{"n":1}')
    with pytest.raises(MixpanelException):
        consumer.send("events", '{"n":2}')  # the automatic flush fails: both stay buffered
    with pytest.raises(MixpanelException) as e:
        consumer.send("events", '{"n":3}')  # [1, 2] delivered, then [3] fails
    assert e.value.message == '[{"n":3}]'
    assert consumer._buffers["events"] == ['{"n":3}']
    consumer.flush()
    assert consumer._buffers["events"] == []
    batches = [data(r) for r in mp_server.requests]
    assert batches == [[{"n": 1}, {"n": 2}], [{"n": 1}, {"n": 2}], [{"n": 3}], [{"n": 3}]]


def test_a30_with_a_fake_inner_consumer() -> None:
    consumer, inner = buffered(2)
    inner.fail_on = {2}
    consumer._buffers["events"].extend(['"a"', '"b"', '"c"'])
    consumer._auths["events"].extend([(None, None)] * 3)
    with pytest.raises(MixpanelException):
        consumer.flush()
    assert consumer._buffers["events"] == ['"c"']
    consumer.flush()
    assert [c[1] for c in inner.calls] == ['["a","b"]', '["c"]', '["c"]']
