"""The collector's Mixpanel API (``/track``, ``/engage``, ``/groups``, ``/import``), over real
HTTP: through the real facade with each of its consumers, and byte for byte."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

import pytest

from segment_clone.collector import Collector, Faults, FaultSettings
from segment_clone.collector.mixpanel_api import MAX_BODY_BYTES, MAX_RECORD_BYTES, MAX_RECORDS
from segment_clone.mixpanel import (
    AsyncBufferedConsumer,
    BufferedConsumer,
    Consumer,
    Mixpanel,
    MixpanelException,
    ServiceAccountCredentials,
    __version__,
)

from ..api import Reply, call, get, post

OK = {"status": 1, "error": None}
TYPES = {"events": "track", "people": "engage", "groups": "groups", "imports": "import"}
"""The facade's endpoint names and the type the collector stores their records under."""
FORM = "application/x-www-form-urlencoded"


def form_post(
    url: str, path: str, data: Any, *, gzip: bool = False, headers: dict[str, str] | None = None
) -> Reply:
    """POST ``data`` as upstream's Consumer does: form field ``data`` (JSON unless a str)."""
    text = data if isinstance(data, str) else json.dumps(data)
    body = urlencode({"data": text, "verbose": "1", "ip": "0"}).encode()
    return post(url, path, body, gzip=gzip, headers={"Content-Type": FORM, **(headers or {})})


def basic(user: str, password: str = "") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def event(name: str = "E", insert_id: str | None = "i1", **props: Any) -> dict[str, Any]:
    properties = {"token": "tok", "distinct_id": "u1", "time": 1000.1, **props}
    if insert_id is not None:
        properties["$insert_id"] = insert_id
    return {"event": name, "properties": properties}


def stored(collector: Collector, type_: str) -> list[dict[str, Any]]:
    return collector.events(source="mixpanel", type=type_)


def fixed(consumer: Any) -> Mixpanel:
    """A client with a fixed clock and predictable insert ids, aliasing through ``consumer``."""
    mp = Mixpanel("tok", consumer, alias_uses_consumer=True)
    mp._now = lambda: 1000.1  # type: ignore[method-assign]
    ids = itertools.count()
    mp._make_insert_id = lambda: f"id-{next(ids)}"  # type: ignore[method-assign]
    return mp


class Tee:
    """A consumer that records each message per endpoint and passes it on unchanged (if there
    is an ``inner`` consumer to pass it to)."""

    def __init__(self, inner: Any = None) -> None:
        self.inner = inner
        self.sent: dict[str, list[Any]] = {name: [] for name in TYPES}

    def send(self, endpoint: str, json_message: str, *args: Any) -> None:
        self.sent[endpoint].append(json.loads(json_message))
        if self.inner is not None:
            self.inner.send(endpoint, json_message, *args)


def use_every_method(mp: Mixpanel) -> None:
    mp.track("u1", "Signed Up", {"plan": "pro"})
    mp.track("u2", "Clicked", meta={"ip": 0})
    mp.alias("ALIAS", "u1")
    mp.import_data(None, "u1", "Old Event", 1234.5, {"a": 1}, api_secret="S")
    mp.merge(None, "u1", "u2", api_secret="S")
    mp.people_set("u1", {"plan": "pro"}, meta={"$ip": 0, "$ignore_time": True})
    mp.people_set_once("u1", {"first": 1})
    mp.people_increment("u1", {"logins": 1})
    mp.people_append("u1", {"pages": "a"})
    mp.people_union("u1", {"tags": ["x"]})
    mp.people_remove("u1", {"tags": "y"})
    mp.people_unset("u1", ["old"])
    mp.people_track_charge("u1", 12.65, {"$time": "2013-04-01T09:02:00"})
    mp.people_clear_charges("u1")
    mp.people_delete("u2")
    mp.group_set("company", "acme", {"size": 12})
    mp.group_set_once("company", "acme", {"founded": 1999})
    mp.group_union("company", "acme", {"tags": ["b2b"]})
    mp.group_remove("company", "acme", {"tags": "b2c"})
    mp.group_unset("company", "acme", ["old"])
    mp.group_delete("company", 42)


def profile(op: str, value: Any, **extra: Any) -> dict[str, Any]:
    return {"$token": "tok", "$time": 1000.1, "$distinct_id": "u1", op: value, **extra}


def group(op: str, value: Any, group_id: Any = "acme") -> dict[str, Any]:
    return {
        "$token": "tok", "$time": 1000.1, "$group_key": "company", "$group_id": group_id,
        op: value,
    }  # fmt: skip


LIB = {"mp_lib": "python", "$lib_version": __version__}
EXPECTED = {
    "track": [
        {"event": "Signed Up", "properties": {
            "token": "tok", "distinct_id": "u1", "time": 1000.1, "$insert_id": "id-0", **LIB,
            "plan": "pro"}},
        {"event": "Clicked", "properties": {
            "token": "tok", "distinct_id": "u2", "time": 1000.1, "$insert_id": "id-1", **LIB},
         "ip": 0},
        {"event": "$create_alias",
         "properties": {"distinct_id": "u1", "alias": "ALIAS", "token": "tok"}},
    ],
    "import": [
        {"event": "Old Event", "properties": {
            "token": "tok", "distinct_id": "u1", "time": 1234.5, "$insert_id": "id-2", **LIB,
            "a": 1}},
        {"event": "$merge", "properties": {"$distinct_ids": ["u1", "u2"], "token": "tok"}},
    ],
    "engage": [
        profile("$set", {"plan": "pro"}, **{"$ip": 0, "$ignore_time": True}),
        profile("$set_once", {"first": 1}),
        profile("$add", {"logins": 1}),
        profile("$append", {"pages": "a"}),
        profile("$union", {"tags": ["x"]}),
        profile("$remove", {"tags": "y"}),
        profile("$unset", ["old"]),
        profile("$append", {"$transactions": {"$time": "2013-04-01T09:02:00", "$amount": 12.65}}),
        profile("$unset", ["$transactions"]),
        {"$token": "tok", "$time": 1000.1, "$distinct_id": "u2", "$delete": ""},
    ],
    "groups": [
        group("$set", {"size": 12}),
        group("$set_once", {"founded": 1999}),
        group("$union", {"tags": ["b2b"]}),
        group("$remove", {"tags": "b2c"}),
        group("$unset", ["old"]),
        group("$delete", "", group_id=42),
    ],
}  # fmt: skip


# -- through the facade ------------------------------------------------------------------------


def test_every_method_is_stored_exactly_as_the_facade_built_it(collector: Collector) -> None:
    use_every_method(fixed(Consumer(api_host=collector.url, request_timeout=10)))
    for type_, records in EXPECTED.items():
        assert stored(collector, type_) == records, type_
    assert collector.stats()["sources"]["mixpanel"] == {
        "total": 21,
        "duplicates": 0,
        "types": {"engage": 10, "groups": 6, "import": 2, "track": 3},
    }


@pytest.mark.parametrize("kind", ["BufferedConsumer", "AsyncBufferedConsumer"])
def test_buffered_consumers_deliver_every_endpoint_in_batches(
    collector: Collector, async_consumers: Callable[..., AsyncBufferedConsumer], kind: str
) -> None:
    inner: Any
    if kind == "BufferedConsumer":
        inner = BufferedConsumer(4, api_host=collector.url, request_timeout=10)
    else:
        inner = async_consumers(max_size=4, api_host=collector.url)
    tee = Tee(inner)
    use_every_method(fixed(tee))
    inner.flush()
    for endpoint, type_ in TYPES.items():
        assert stored(collector, type_) == tee.sent[endpoint] == EXPECTED[type_], type_


def test_filters_of_the_inspection_api_work_on_mixpanel_rows(collector: Collector) -> None:
    use_every_method(fixed(Consumer(api_host=collector.url, request_timeout=10)))
    url = collector.url
    signed_up = get(url, "/api/events?source=mixpanel&event=Signed%20Up")
    assert signed_up == {"total": 1, "events": [EXPECTED["track"][0]]}
    by_user = get(url, "/api/events?user_id=u2")["events"]
    assert by_user == [EXPECTED["track"][1], EXPECTED["engage"][-1]]
    assert get(url, "/api/events?type=import&limit=1")["events"] == [EXPECTED["import"][1]]
    sets = get(url, "/api/events?type=engage&event=%24set")  # profile rows: their operation
    assert sets == {"total": 1, "events": [EXPECTED["engage"][0]]}
    assert get(url, "/api/events?type=groups&event=%24delete")["total"] == 1
    assert get(url, "/api/events?source=segment")["total"] == 0
    assert get(url, "/api/stats")["sources"]["mixpanel"]["types"]["engage"] == 10


# -- bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("send", [form_post, post], ids=["form", "json"])
def test_form_and_json_bodies_with_one_record_or_a_list(
    collector: Collector, send: Callable[..., Reply], compress: bool
) -> None:
    one, batch = event("One", "i1"), [event("Two", "i2"), event("Three", "i3")]
    for data in (one, batch):
        reply = send(collector.url, "/track", data, gzip=compress)
        assert (reply.status, reply.json()) == (200, OK)
        assert reply.headers["content-type"] == "application/json"
    assert stored(collector, "track") == [one, *batch]


def test_an_empty_list_is_accepted_and_stores_nothing(collector: Collector) -> None:
    assert form_post(collector.url, "/engage", []).json() == OK
    assert collector.events() == []


BAD: list[tuple[str, str, bytes, str]] = [
    ("/track", FORM, b"data=%7Bbroken", "data is not valid JSON"),
    ("/track", "application/json", b"[1", "data is not valid JSON"),
    ("/track", FORM, b"verbose=1&ip=0", "no 'data' field"),
    ("/track", FORM, b"data=%FF%FE", "the form cannot be read"),
    ("/track", FORM, b"data=42", "data must be a JSON object or a list of objects"),
    ("/track", "application/json", b'[{"event":"E","properties":{"token":"t"}}, 7]',
     "record 1 is not a JSON object"),
    ("/track", "application/json", b'{"properties":{"token":"t"}}', "record 0 needs an 'event'"),
    ("/track", "application/json", b'{"event":"E"}', "record 0 needs a 'properties' object"),
    ("/track", "application/json", b'{"event":"E","properties":{"distinct_id":"u"}}',
     "record 0 needs properties.token"),
    ("/import", "application/json", b'{"event":"","properties":{}}', "record 0 needs an 'event'"),
    ("/engage", "application/json", b'{"$token":"t","$set":{}}', "needs a '$distinct_id'"),
    ("/engage", "application/json", b'{"$distinct_id":"u","$set":{}}', "needs a '$token'"),
    ("/engage", "application/json", b'{"$token":"t","$distinct_id":"u","$frob":1}',
     "record 0 has no operation (one of $set, $set_once"),
    ("/groups", "application/json", b'{"$token":"t","$group_id":"g","$set":{}}',
     "needs a '$group_key'"),
    ("/groups", "application/json", b'{"$token":"t","$group_key":"k","$set":{}}',
     "needs a '$group_id'"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "content_type", "body", "error"), BAD)
def test_invalid_input_is_a_400_in_mixpanel_words_and_stores_nothing(
    collector: Collector, path: str, content_type: str, body: bytes, error: str
) -> None:
    reply = call(collector.url, "POST", path, body, {"Content-Type": content_type})
    assert reply.status == 400
    answer = reply.json()
    assert answer["status"] == 0
    assert error in answer["error"]
    assert set(answer) == {"status", "error"}
    assert collector.events() == []


def test_corrupt_gzip_is_a_400_in_mixpanel_words(collector: Collector) -> None:
    headers = {"Content-Type": FORM, "Content-Encoding": "gzip"}
    reply = call(collector.url, "POST", "/track", b"not gzip", headers)
    assert reply.status == 400
    assert reply.json()["status"] == 0
    assert reply.json()["error"].startswith("body is not valid gzip")


def test_limits_are_mixpanels(collector: Collector) -> None:
    too_many = [event(insert_id=str(i)) for i in range(MAX_RECORDS + 1)]
    reply = post(collector.url, "/import", too_many, gzip=True)
    assert (reply.status, reply.json()["status"]) == (413, 0)
    assert reply.json()["error"] == f"{MAX_RECORDS + 1} records, over the limit of {MAX_RECORDS}"

    big = event(blob="x" * MAX_RECORD_BYTES)
    reply = post(collector.url, "/track", [event(insert_id="ok"), big], gzip=True)
    assert (reply.status, reply.json()["status"]) == (413, 0)
    assert reply.json()["error"].startswith("record 1 is ")

    bomb = gzip.compress(b"[" + b" " * MAX_BODY_BYTES + b"]")  # 10 MB of blanks, 10 KB zipped
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    reply = call(collector.url, "POST", "/groups", bomb, headers)
    assert reply.status == 413
    assert reply.json() == {"status": 0, "error": f"inflated body is over {MAX_BODY_BYTES} bytes"}
    assert collector.events() == []

    at_limit = [event(insert_id=str(i)) for i in range(MAX_RECORDS)]  # 2000 records, ~300 KB
    assert post(collector.url, "/import", at_limit, gzip=True).json() == OK
    assert collector.stats()["sources"]["mixpanel"]["total"] == MAX_RECORDS


# -- deduplication -----------------------------------------------------------------------------


def test_a_batch_sent_twice_stores_its_events_once_and_its_profile_updates_twice(
    collector: Collector,
) -> None:
    built = Tee()
    mp = Mixpanel("tok", built)
    for i in range(5):
        mp.track("u1", "Clicked", {"i": i})
    mp.people_set("u1", {"a": 1})
    consumer = Consumer(api_host=collector.url, request_timeout=10)
    for _ in range(2):  # the second time as a retry after a lost answer would
        consumer.send("events", json.dumps(built.sent["events"]))
        consumer.send("people", json.dumps(built.sent["people"]))
    assert stored(collector, "track") == built.sent["events"]
    assert stored(collector, "engage") == built.sent["people"] * 2
    assert collector.stats()["sources"]["mixpanel"]["duplicates"] == 5


def test_the_dedup_key_is_mixpanels_event_distinct_id_time_and_insert_id(
    collector: Collector,
) -> None:
    first = event("E", "same", time=1_700_000_000.5)
    variants = [
        event("E", "same", time=1_700_000_000_500),  # the same instant in ms: a duplicate
        event("Other", "same", time=1_700_000_000.5),
        event("E", "same", time=1_700_000_000.5, distinct_id="u2"),
        event("E", "same", time=1_700_000_001),
        event("E", None, time=1_700_000_000.5),  # no $insert_id: never deduplicated
        event("E", None, time=1_700_000_000.5),
    ]
    assert form_post(collector.url, "/track", [first, *variants]).json() == OK
    assert stored(collector, "track") == [first, *variants[1:]]
    # /track and /import share one key space, as a Mixpanel project does
    assert form_post(collector.url, "/import", first).json() == OK
    assert collector.stats()["sources"]["mixpanel"]["duplicates"] == 2


# -- /import auth ------------------------------------------------------------------------------


def test_without_a_secret_import_accepts_anyone(collector: Collector) -> None:
    for headers in ({}, basic("whatever"), {"Authorization": "Bearer x"}):
        assert form_post(collector.url, "/import", event(), headers=headers).json() == OK
    assert len(stored(collector, "import")) == 1  # the same event three times


def test_with_a_secret_import_needs_it_and_the_other_endpoints_do_not(
    make_collector: Callable[..., Collector],
) -> None:
    collector = make_collector(mixpanel_secret="S3CRET")
    url = collector.url
    refusals = {
        "none": form_post(url, "/import", event()),
        "wrong": form_post(url, "/import", event(), headers=basic("nope")),
        "bearer": form_post(url, "/import", event(), headers={"Authorization": "Bearer S3CRET"}),
        "malformed": form_post(url, "/import", event(), headers={"Authorization": "Basic !!"}),
    }
    assert {k: (r.status, r.json()["status"]) for k, r in refusals.items()} == dict.fromkeys(
        refusals, (401, 0)
    )
    assert refusals["wrong"].json()["error"] == "wrong project secret"
    assert collector.events() == []

    # the project secret as the user name, as upstream 4.8+ sends it
    Mixpanel("tok", Consumer(api_host=url, request_timeout=10)).import_data(
        None, "u1", "Old", 1.0, api_secret="S3CRET"
    )
    # a service account whose secret is the collector's
    service = ServiceAccountCredentials("svc-user", "S3CRET", "42")
    Mixpanel("tok", Consumer(api_host=url, request_timeout=10, credentials=service)).import_data(
        None, "u1", "Older", 0.5
    )
    assert [e["event"] for e in stored(collector, "import")] == ["Old", "Older"]

    wrong = Mixpanel("tok", Consumer(api_host=url, request_timeout=10))
    with pytest.raises(MixpanelException, match="Mixpanel error: wrong project secret"):
        wrong.import_data(None, "u1", "Refused", 1.0, api_secret="guess")
    wrong.track("u1", "Tracked")  # token auth: /track never asks for the secret
    wrong.people_set("u1", {"a": 1})
    assert len(collector.events()) == 4


def test_an_empty_secret_is_refused_before_anything_is_opened(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        Collector(tmp_path / "e.db", port=0, mixpanel_secret="")
    assert not (tmp_path / "e.db").exists()


# -- fault injection ---------------------------------------------------------------------------


def test_injected_faults_apply_and_are_worded_as_mixpanel_errors(
    make_collector: Callable[..., Collector],
) -> None:
    collector = make_collector(faults=Faults(FaultSettings(1.0, 503, retry_after=2)))
    for path in ("/track", "/engage", "/groups", "/import"):
        reply = form_post(collector.url, path, [])
        assert reply.status == 503
        assert reply.headers["retry-after"] == "2"
        assert reply.json() == {"status": 0, "error": "fault injection: 503"}
    assert collector.faults.injected == 4
    assert get(collector.url, "/api/events")["total"] == 0  # inspection is spared


def test_unknown_paths_and_methods_keep_the_collectors_own_errors(collector: Collector) -> None:
    assert call(collector.url, "GET", "/track").json()["code"] == "method_not_allowed"
    reply = call(collector.url, "POST", "/trak", b"data=%7B%7D", {"Content-Type": FORM})
    assert (reply.status, reply.json()["code"]) == (404, "not_found")


def test_the_debugger_lists_who_mixpanel_rows_are_about(collector: Collector) -> None:
    mp = Mixpanel("tok", Consumer(api_host=collector.url, request_timeout=10))
    mp.track("event-user", "Clicked")
    mp.people_set("profile-user", {"a": 1})
    mp.group_set("company", "acme-group", {"b": 2})
    entries = get(collector.url, "/api/entries")["entries"]
    assert [(e["type"], e["user"], e["event"]) for e in entries] == [
        ("groups", None, "$set"),
        ("engage", "profile-user", "$set"),
        ("track", "event-user", "Clicked"),
    ]
    [profile] = get(collector.url, "/api/entries?user=profile-user")["entries"]
    assert json.loads(profile["raw"])["$set"] == {"a": 1}
