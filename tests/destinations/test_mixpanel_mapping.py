"""Segment messages mapped to Mixpanel records: one case per row of the mapping table, each
record posted to the collector's Mixpanel endpoints, and generated messages built by the SDK."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_clone import Client
from segment_clone.collector import Collector
from segment_clone.destinations import MappingSettings, Mixpanel, Record, Refused, to_mixpanel
from segment_clone.destinations.mixpanel import base_url
from segment_clone.destinations.user_agent import browser

from ..api import post

TOKEN = "tok"
SETTINGS = MappingSettings(TOKEN)
WHEN = "2026-12-03T05:00:00.123+00:00"
WHEN_MS = 1796274000123
CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.6778.85 Safari/537.36"
)


def message(type_: str, **fields: Any) -> dict[str, Any]:
    base = {
        "type": type_,
        "messageId": "0b0c1d2e-3f40-4152-8364-758697a8b9ca",
        "timestamp": WHEN,
        "userId": "u1",
        "anonymousId": "a1",
        "context": {"library": {"name": "analytics-python", "version": "2.4.0"}},
    }
    return {**base, **fields}


def deliver(collector: Collector, records: list[Record]) -> None:
    """Each record to its endpoint of the collector, as JSON; every one must be accepted."""
    for record in records:
        reply = post(
            collector.url,
            f"/{record.endpoint}",
            json.dumps([record.body]).encode(),
            headers={"Content-Type": "application/json"},
        )
        assert reply.status == 200, (record, reply.body)


def stored_records(collector: Collector) -> list[dict[str, Any]]:
    return collector.events(source="mixpanel")


# -- one case per row of the table -----------------------------------------------------------


def test_track_goes_to_import_with_identity_time_and_insert_id(collector: Collector) -> None:
    records = to_mixpanel(
        message("track", event="Order Completed", properties={"total": 9}), SETTINGS
    )
    assert [r.endpoint for r in records] == ["import"]
    props = records[0].body["properties"]
    assert records[0].body["event"] == "Order Completed"
    assert props["time"] == WHEN_MS
    assert props["distinct_id"] == "u1"
    assert props["$user_id"] == "u1"
    assert props["$device_id"] == "a1"
    assert props["$insert_id"] == "0b0c1d2e-3f40-4152-8364-758697a8b9ca"
    assert props["token"] == TOKEN
    assert props["total"] == 9
    assert props["mp_lib"] == "Segment: analytics-python"
    assert props["$lib_version"] == "2.4.0"
    deliver(collector, records)
    assert stored_records(collector)[0]["event"] == "Order Completed"


def test_anonymous_track_uses_the_anonymous_id() -> None:
    props = to_mixpanel(message("track", event="E", userId=None), SETTINGS)[0].body["properties"]
    assert props["distinct_id"] == "a1"
    assert "$user_id" not in props
    assert props["$device_id"] == "a1"


def test_the_callers_properties_win_but_not_over_identity() -> None:
    props = to_mixpanel(
        message(
            "track",
            event="E",
            properties={"distinct_id": "x", "time": 1, "$insert_id": "y", "ip": "9.9.9.9"},
            context={"ip": "1.2.3.4"},
        ),
        SETTINGS,
    )[0].body["properties"]
    assert (props["distinct_id"], props["time"]) == ("u1", WHEN_MS)
    assert props["$insert_id"] != "y"
    assert props["ip"] == "9.9.9.9"


def test_context_maps_to_mixpanel_properties() -> None:
    context = {
        "ip": "1.2.3.4",
        "locale": "fr-FR",
        "userAgent": CHROME,
        "page": {"url": "https://shop.example/cart?x=1", "referrer": "https://ref.example/"},
        "os": {"name": "Linux", "version": "6.1"},
        "app": {"version": "3.2", "build": "321", "name": "Shop", "namespace": "com.shop"},
        "device": {"manufacturer": "Apple", "model": "iPhone15,2", "type": "ios", "id": "d1"},
        "screen": {"width": 390, "height": 844, "density": 3},
        "network": {"wifi": True, "carrier": "T"},
        "location": {"country": "FR"},
        "campaign": {
            "source": "news",
            "medium": "email",
            "name": "spring",
            "term": "t",
            "content": "c",
        },
    }
    props = to_mixpanel(message("track", event="E", context=context), SETTINGS)[0].body[
        "properties"
    ]
    assert {
        k: props[k] for k in props if k not in ("token", "time", "distinct_id", "$insert_id")
    } == {
        "$user_id": "u1",
        "$device_id": "a1",
        "$source": "segment",
        "ip": "1.2.3.4",
        "$locale": "fr-FR",
        "$browser": "Chrome",
        "$browser_version": "131.0",
        "$current_url": "https://shop.example/cart?x=1",
        "$referrer": "https://ref.example/",
        "$os": "Linux",
        "$os_version": "6.1",
        "$app_version_string": "3.2",
        "$app_build_number": "321",
        "$app_name": "Shop",
        "$app_namespace": "com.shop",
        "$manufacturer": "Apple",
        "$model": "iPhone15,2",
        "$device_type": "ios",
        "$device": "d1",
        "$screen_width": 390,
        "$screen_height": 844,
        "$screen_density": 3,
        "$wifi_enabled": True,
        "$carrier": "T",
        "mp_country_code": "FR",
        "utm_source": "news",
        "utm_medium": "email",
        "utm_campaign": "spring",
        "utm_term": "t",
        "utm_content": "c",
    }


@pytest.mark.parametrize(
    ("type_", "name", "page_names", "expected"),
    [
        ("page", "Pricing", "viewed", "Viewed Pricing"),
        ("screen", "Home", "viewed", "Viewed Home"),
        ("page", None, "viewed", "Loaded a Page"),
        ("page", "Pricing", "loaded", "Loaded a Page"),
        ("screen", "Home", "loaded", "Loaded a Screen"),
    ],
)
def test_page_and_screen_names(
    collector: Collector, type_: str, name: str | None, page_names: Any, expected: str
) -> None:
    records = to_mixpanel(message(type_, name=name), MappingSettings(TOKEN, page_names=page_names))
    assert records[0].endpoint == "import"
    assert records[0].body["event"] == expected
    deliver(collector, records)


def test_identify_with_both_ids_is_identify_then_set(collector: Collector) -> None:
    traits = {"email": "a@b.c", "firstName": "Ada", "lastName": "Lovelace", "plan": "pro"}
    records = to_mixpanel(message("identify", traits=traits, context={"ip": "1.2.3.4"}), SETTINGS)
    assert [r.endpoint for r in records] == ["track", "engage"]
    identify = records[0].body
    assert identify["event"] == "$identify"
    assert identify["properties"]["$identified_id"] == "u1"
    assert identify["properties"]["$anon_id"] == "a1"
    assert records[1].body == {
        "$token": TOKEN,
        "$distinct_id": "u1",
        "$ip": "1.2.3.4",
        "$set": {
            "$email": "a@b.c",
            "$first_name": "Ada",
            "$last_name": "Lovelace",
            "plan": "pro",
            "$name": "Ada Lovelace",
        },
    }
    deliver(collector, records)
    assert [e.get("event", "$set" in e) for e in stored_records(collector)] == ["$identify", True]


def test_identify_with_one_id_and_no_traits_maps_to_nothing() -> None:
    assert to_mixpanel(message("identify", anonymousId=None, traits={}), SETTINGS) == []


def test_trait_renames() -> None:
    traits = {"name": "N", "username": "u", "phone": "1", "avatar": "x", "createdAt": "2020-01-01"}
    engage = to_mixpanel(message("identify", anonymousId=None, traits=traits), SETTINGS)[0]
    assert engage.body["$set"] == {
        "$name": "N",
        "$username": "u",
        "$phone": "1",
        "$avatar": "x",
        "$created": "2020-01-01",
    }


def test_group_goes_to_groups_with_the_group_key(collector: Collector) -> None:
    records = to_mixpanel(
        message("group", groupId="g1", traits={"name": "Acme"}),
        MappingSettings(TOKEN, group_key="company"),
    )
    assert records == [
        Record(
            "groups",
            {"$token": TOKEN, "$group_key": "company", "$group_id": "g1", "$set": {"name": "Acme"}},
        )
    ]
    deliver(collector, records)


def test_alias_is_create_alias(collector: Collector) -> None:
    records = to_mixpanel(message("alias", previousId="a1", anonymousId=None), SETTINGS)
    assert records[0].endpoint == "track"
    assert records[0].body["event"] == "$create_alias"
    assert records[0].body["properties"]["distinct_id"] == "a1"
    assert records[0].body["properties"]["alias"] == "u1"
    deliver(collector, records)


@pytest.mark.parametrize(
    ("message_id", "kept"),
    [
        ("0b0c1d2e-3f40-4152-8364-758697a8b9ca", True),
        ("short-id-1", True),
        ("has spaces and é", False),
        ("x" * 37, False),
        (12345, False),
    ],
)
def test_insert_id_is_valid_for_mixpanel_and_stable(message_id: Any, kept: bool) -> None:
    msg = message("track", event="E", messageId=message_id)
    first = to_mixpanel(msg, SETTINGS)[0].body["properties"]["$insert_id"]
    assert first == to_mixpanel(msg, SETTINGS)[0].body["properties"]["$insert_id"]
    assert (first == message_id) is kept
    assert len(first) <= 36 and all(c.isascii() and (c.isalnum() or c == "-") for c in first)


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"timestamp": "1969-07-20T20:17:00Z"}, "before 1971"),
        ({"timestamp": "not a time"}, "not an ISO 8601 time"),
        ({"timestamp": None}, "no 'timestamp'"),
        ({"userId": None, "anonymousId": None}, "neither"),
        ({"event": ""}, "needs an 'event' name"),
        ({"properties": {f"p{i}": i for i in range(300)}}, "properties"),
        ({"properties": {"big": "x" * (1024 * 1024)}}, "bytes"),
    ],
)
def test_refusals_say_why(fields: dict[str, Any], reason: str) -> None:
    with pytest.raises(Refused, match=reason):
        to_mixpanel(message("track", **{"event": "E", **fields}), SETTINGS)


def test_events_from_the_future_are_refused_only_given_a_clock() -> None:
    later = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    assert to_mixpanel(message("track", event="E", timestamp=later), SETTINGS)
    with pytest.raises(Refused, match="future"):
        to_mixpanel(message("track", event="E", timestamp=later), SETTINGS, now_ms=now_ms)


def test_unknown_types_are_refused() -> None:
    with pytest.raises(Refused, match="no Mixpanel mapping"):
        to_mixpanel({"type": "batch"}, SETTINGS)


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (CHROME, ("Chrome", "131.0")),
        (
            CHROME.replace("Safari/537.36", "Safari/537.36 Edg/131.0.2903.70"),
            ("Microsoft Edge", "131.0"),
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            ("Firefox", "133.0"),
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15"
            " (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
            ("Mobile Safari", "17.0"),
        ),
        ("curl/8.5.0", None),
    ],
)
def test_browsers(user_agent: str, expected: Any) -> None:
    assert browser(user_agent) == expected


# -- the destination object ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_host", "url"),
    [
        ("api.mixpanel.com", "https://api.mixpanel.com"),
        ("api-eu.mixpanel.com", "https://api-eu.mixpanel.com"),
        ("http://127.0.0.1:8787/", "http://127.0.0.1:8787"),
    ],
)
def test_api_host_takes_a_host_name_or_a_base_url(api_host: str, url: str) -> None:
    assert base_url(api_host) == url
    assert Mixpanel(TOKEN, api_host=api_host).base_url == url


@pytest.mark.parametrize("api_host", ["", "ftp://x", "http://", "https://h/?q=1"])
def test_bad_api_hosts_are_refused(api_host: str) -> None:
    with pytest.raises(ValueError, match="api_host"):
        Mixpanel(TOKEN, api_host=api_host)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="token"):
        Mixpanel("")
    with pytest.raises(ValueError, match="page_names"):
        Mixpanel(TOKEN, page_names="shown")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="api_secret"):
        Mixpanel(TOKEN, api_secret="")
    assert "secret" not in repr(Mixpanel(TOKEN, api_secret="hush"))


# -- every message the SDK can build ---------------------------------------------------------

_text = st.text(max_size=12)
_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_props = st.dictionaries(_text, _values, max_size=6)
_ids = st.one_of(st.none(), st.text(min_size=1, max_size=20), st.integers(0, 10**6))
_times = st.datetimes(
    min_value=datetime(1971, 1, 2), max_value=datetime(2030, 1, 1), timezones=st.just(timezone.utc)
)
_calls = st.one_of(
    st.tuples(st.just("track"), _ids, _ids, st.text(min_size=1, max_size=20), _props, _times),
    st.tuples(st.just("page"), _ids, _ids, st.one_of(st.none(), _text), _props, _times),
    st.tuples(st.just("screen"), _ids, _ids, st.one_of(st.none(), _text), _props, _times),
    st.tuples(st.just("identify"), _ids, _ids, st.none(), _props, _times),
    st.tuples(st.just("group"), _ids, _ids, st.text(min_size=1, max_size=20), _props, _times),
    st.tuples(st.just("alias"), _ids, _ids, st.text(min_size=1, max_size=20), _props, _times),
)


def build(call: tuple[Any, ...]) -> dict[str, Any] | None:
    """The message the SDK builds for ``call`` (through ``before_send``), or None if refused."""
    kind, user_id, anonymous_id, name, props, when = call
    built: list[dict[str, Any]] = []

    def capture(msg: dict[str, Any]) -> None:
        built.append(msg)

    client = Client("key", send=False, before_send=capture)
    ids = {"user_id": user_id, "anonymous_id": anonymous_id, "timestamp": when}
    try:
        if kind == "track":
            client.track(event=name, properties=props, **ids)
        elif kind in ("page", "screen"):
            getattr(client, kind)(name=name, properties=props, **ids)
        elif kind == "identify":
            client.identify(traits=props, **ids)
        elif kind == "group":
            client.group(group_id=name, traits=props, **ids)
        else:
            client.alias(
                previous_id=name, user_id=user_id if user_id is not None else "u", timestamp=when
            )
    except (AssertionError, TypeError, ValueError):
        return None  # the SDK refuses the call itself
    finally:
        client.shutdown()
    return built[0] if built else None


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(calls=st.lists(_calls, min_size=1, max_size=8))
def test_every_message_the_sdk_builds_maps_to_records_the_collector_accepts(
    collector: Collector, calls: list[tuple[Any, ...]]
) -> None:
    for call in calls:
        msg = build(call)
        if msg is None:
            continue
        records = to_mixpanel(msg, SETTINGS)
        assert records == to_mixpanel(json.loads(json.dumps(msg)), SETTINGS)  # same twice
        deliver(collector, records)


# -- segment-clone map mixpanel --------------------------------------------------------------


def test_the_map_command_prints_records_and_refusals(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from segment_clone.cli import main

    path = tmp_path / "messages.jsonl"
    lines = [
        json.dumps(message("track", event="Signed Up")),
        "",
        json.dumps(message("track", event="Old", timestamp="1960-01-01T00:00:00Z")),
        "not json",
        json.dumps(message("group", groupId="g1", traits={})),
    ]
    path.write_text("\n".join(lines) + "\n")
    assert main(["map", "mixpanel", str(path), "--token", "T", "--group-key", "company"]) == 1
    out, err = capsys.readouterr()
    records = [json.loads(line) for line in out.splitlines()]
    assert [(r["line"], r["endpoint"]) for r in records] == [(1, "import"), (5, "groups")]
    assert records[0]["record"]["properties"]["token"] == "T"
    assert records[1]["record"]["$group_key"] == "company"
    assert "line 3: the event is from 1960-01-01" in err
    assert "line 4:" in err
    assert "2 message(s) mapped, 2 refused" in err
    assert main(["map", "mixpanel", str(tmp_path / "missing.jsonl")]) == 2
