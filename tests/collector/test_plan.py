"""Tracking plans: both shapes, every violation type for Segment and Mixpanel messages over real
HTTP, flag and block modes, the violations API, and the plan module's own rules."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

import pytest

from segment_clone.collector import Collector
from segment_clone.collector.plan import (
    INSTALL_HINT,
    VIOLATION_TYPES,
    PlanError,
    load_plan,
    parse_plan,
    split,
)

from ..api import get, post
from .plans import (
    BROKEN_ORDERS,
    COMPACT,
    GOOD_ORDER,
    SHAPES,
    mixpanel_event,
    segment_track,
    write_plan,
)

MakeCollector = Callable[..., Collector]


@pytest.fixture(params=sorted(SHAPES))
def planned(request: pytest.FixtureRequest, make_collector: MakeCollector) -> Collector:
    """A collector flagging violations of the sample plan, read from either shape."""
    return make_collector(plan=parse_plan(SHAPES[request.param]))


def form(records: Any) -> bytes:
    return urlencode({"data": json.dumps(records)}).encode()


def mixpanel_post(url: str, path: str, records: Any) -> Any:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    return post(url, path, form(records), headers=headers)


def stored_violations(collector: Collector, **filters: str) -> list[tuple[str, str]]:
    """``(type, field)`` of every violation of the matching entries, newest entry first."""
    query = urlencode(filters)
    entries = get(collector.url, f"/api/entries?{query}")["entries"]
    return [(v["type"], v["field"]) for e in entries for v in e["violations"]]


# -- every violation type, through each API ----------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BROKEN_ORDERS))
def test_each_violation_of_a_segment_event_is_stored_with_it(planned: Collector, kind: str) -> None:
    properties, field = BROKEN_ORDERS[kind]
    batch = [
        segment_track("Order Completed", GOOD_ORDER, "good"),
        segment_track("Order Completed", properties, "bad"),
    ]
    assert post(planned.url, "/v1/batch", {"batch": batch}).status == 200
    [good, bad] = get(planned.url, "/api/entries?order=asc")["entries"]
    assert (good["valid"], good["violations"]) == (True, [])
    assert bad["valid"] is False
    [violation] = bad["violations"]
    assert (violation["type"], violation["field"]) == (kind, field)
    assert violation["message"].startswith(field + " ")  # a sentence about the field
    invalid = get(planned.url, "/api/events?valid=false")
    assert [m["messageId"] for m in invalid["events"]] == ["bad"]
    assert [m["messageId"] for m in get(planned.url, "/api/events?valid=true")["events"]] == [
        "good"
    ]


@pytest.mark.parametrize("kind", sorted(BROKEN_ORDERS))
def test_each_violation_of_a_mixpanel_event_is_stored_with_it(
    planned: Collector, kind: str
) -> None:
    properties, field = BROKEN_ORDERS[kind]
    records = [
        mixpanel_event("Order Completed", GOOD_ORDER, "i-good"),
        mixpanel_event("Order Completed", properties, "i-bad"),
    ]
    assert mixpanel_post(planned.url, "/track", records).status == 200
    assert stored_violations(planned, source="mixpanel") == [(kind, field)]
    [bad] = get(planned.url, "/api/events?valid=false&source=mixpanel")["events"]
    assert bad["properties"]["$insert_id"] == "i-bad"


def test_these_tests_cover_every_violation_type() -> None:
    assert {*BROKEN_ORDERS, "unplanned"} == set(VIOLATION_TYPES)


def test_an_event_missing_from_the_plan_is_unplanned(planned: Collector) -> None:
    batch = [segment_track("Order Refunded", {}, "s1")]
    assert post(planned.url, "/v1/batch", {"batch": batch}).status == 200
    assert mixpanel_post(planned.url, "/import", mixpanel_event("Order Refunded", {}, "m1")).status
    assert stored_violations(planned) == [("unplanned", "event"), ("unplanned", "event")]
    [group] = get(planned.url, "/api/violations")["groups"]
    assert group["message"] == "'Order Refunded' is not in the plan"


def test_every_violation_of_a_message_is_reported(planned: Collector) -> None:
    broken = {"order_id": 7, "currency": "GBP", "email": "nope", "colour": "red", "size": "L"}
    assert post(planned.url, "/v1/track", segment_track("Order Completed", broken, "m")).status
    assert sorted(stored_violations(planned)) == [
        ("additional", "properties.colour"),
        ("additional", "properties.size"),
        ("enum", "properties.currency"),
        ("format", "properties.email"),
        ("required", "properties.total"),
        ("type", "properties.order_id"),
    ]


def test_identify_and_group_traits_from_both_apis(planned: Collector) -> None:
    batch = [
        {"type": "identify", "userId": "ada", "traits": {"email": "ada@example.com", "age": 36}},
        {"type": "identify", "userId": "bob"},
        {"type": "identify", "userId": "cy", "traits": {"email": "cy@example.com", "age": "old"}},
        {"type": "group", "userId": "ada", "groupId": "acme", "traits": {"name": 5}},
    ]
    assert post(planned.url, "/v1/batch", {"batch": batch}).status == 200
    assert stored_violations(planned, source="segment") == [
        ("type", "traits.name"),
        ("type", "traits.age"),
        ("required", "traits.email"),
    ]
    profiles = [
        {"$token": "t", "$distinct_id": "ada", "$set": {"email": "nope"}},
        {"$token": "t", "$distinct_id": "bob", "$set_once": {"age": 3}},
        {"$token": "t", "$distinct_id": "cy", "$add": {"logins": 1}},  # not checked
    ]
    assert mixpanel_post(planned.url, "/engage", profiles).status == 200
    group = {"$token": "t", "$group_key": "company", "$group_id": "acme", "$set": {}}
    assert mixpanel_post(planned.url, "/groups", group).status == 200
    assert stored_violations(planned, source="mixpanel") == [
        ("required", "$set.name"),
        ("required", "$set_once.email"),
        ("format", "$set.email"),
    ]


def test_valid_combines_with_the_other_filters(planned: Collector) -> None:
    batch = [
        segment_track("Order Completed", {"order_id": "1"}, "a"),
        segment_track("Signed Up", {"plan": "gold"}, "b"),
        {**segment_track("Signed Up", {"plan": "enterprise"}, "c"), "userId": "bob"},
        segment_track("Signed Up", {"plan": "pro"}, "d"),
    ]
    assert post(planned.url, "/v1/batch", {"batch": batch}).status == 200

    def ids(query: str) -> list[str]:
        return [m["messageId"] for m in get(planned.url, f"/api/events?{query}")["events"]]

    assert ids("valid=false") == ["a", "b", "c"]
    assert ids("valid=false&event=Signed+Up") == ["b", "c"]
    assert ids("valid=false&event=Signed+Up&user=bob") == ["c"]
    assert ids("valid=true&event=Signed+Up") == ["d"]
    assert ids("valid=false&q=enterprise") == ["c"]
    assert get(planned.url, "/api/stats")["invalid"] == 3


def test_violations_are_grouped_with_counts_and_last_seen(planned: Collector) -> None:
    first = [segment_track("Order Completed", {"order_id": "1"}, f"a{i}") for i in range(3)]
    assert post(planned.url, "/v1/batch", {"batch": first}).status == 200
    later = [segment_track("Signed Up", {"plan": "gold"}, "b1")]
    assert post(planned.url, "/v1/batch", {"batch": later}).status == 200
    assert mixpanel_post(planned.url, "/track", mixpanel_event("Signed Up", {"plan": 1}, "x"))
    answer = get(planned.url, "/api/violations")
    assert answer["total"] == 5
    groups = [{k: g[k] for k in ("event", "type", "field", "count")} for g in answer["groups"]]
    assert groups[0] == {
        "event": "Order Completed",
        "type": "required",
        "field": "properties.total",
        "count": 3,
    }
    assert groups[1:] == [  # the same violation through either API is one group
        {"event": "Signed Up", "type": "enum", "field": "properties.plan", "count": 2}
    ]
    assert all(g["last_seen"].endswith("Z") for g in answer["groups"])
    assert get(planned.url, "/api/violations?source=mixpanel")["total"] == 1
    assert get(planned.url, "/api/violations?event=Nothing") == {"total": 0, "groups": []}


def test_block_mode_refuses_the_whole_request_with_its_violations(
    make_collector: MakeCollector,
) -> None:
    blocking = make_collector(plan=parse_plan(COMPACT), plan_mode="block")
    batch = [
        segment_track("Order Completed", GOOD_ORDER, "ok"),
        segment_track("Order Completed", {"order_id": 1, "total": 2}, "bad"),
    ]
    reply = post(blocking.url, "/v1/batch", {"batch": batch})
    assert reply.status == 400
    body = reply.json()
    assert body["code"] == "plan_violation"
    assert body["violations"] == [
        {
            "index": 1,
            "event": "Order Completed",
            "type": "type",
            "field": "properties.order_id",
            "message": "properties.order_id must be a string, not an integer",
        }
    ]
    mixpanel = mixpanel_post(blocking.url, "/track", mixpanel_event("Nope", {}, "m"))
    assert mixpanel.status == 400
    assert mixpanel.json()["status"] == 0
    assert [v["type"] for v in mixpanel.json()["violations"]] == ["unplanned"]
    assert get(blocking.url, "/api/events")["total"] == 0
    assert get(blocking.url, "/api/stats")["rejected"] == {"400": 2}
    assert post(blocking.url, "/v1/batch", {"batch": batch[:1]}).status == 200
    assert [m["messageId"] for m in blocking.events()] == ["ok"]


def test_the_plan_shows_in_the_stats(planned: Collector, make_collector: MakeCollector) -> None:
    assert get(planned.url, "/api/stats")["plan"] == {
        "name": "plan",
        "rules": 4,
        "allow_unplanned": False,
        "mode": "flag",
    }
    assert get(make_collector().url, "/api/stats")["plan"] is None


def test_collector_methods_list_and_assert_violations(planned: Collector) -> None:
    assert post(planned.url, "/v1/track", segment_track("Signed Up", {"plan": "x"}, "1")).status
    planned.wait_for(1)
    [violation] = planned.violations()
    assert violation == {
        "event": "Signed Up",
        "id": 1,
        "type": "enum",
        "field": "properties.plan",
        "message": 'properties.plan must be one of "free", "pro"',
    }
    with pytest.raises(
        AssertionError, match=r"(?s)1 tracking-plan violation.*Signed Up: properties.plan"
    ):
        planned.assert_no_violations()
    planned.assert_no_violations(event="Other")


# -- the plan module ---------------------------------------------------------------------------


def test_a_bare_list_of_rules_is_a_segment_plan() -> None:
    rules = [
        {"key": "E", "type": "TRACK", "jsonSchema": {"required": ["properties"]}},
        {"key": None, "type": "COMMON", "jsonSchema": {"required": ["messageId"]}},
    ]
    plan = parse_plan(rules)
    assert plan.size == len(rules)
    found = plan.check("track", "E", {"type": "track"})
    assert [(v.type, v.field) for v in found] == [
        ("required", "properties"),
        ("required", "messageId"),
    ]
    identify = plan.check("identify", None, {"type": "identify"})
    assert [(v.type, v.field) for v in identify] == [("required", "messageId")]


def test_page_and_screen_rules_apply_by_name_or_to_all() -> None:
    plan = parse_plan(
        [
            {"key": "Pricing", "type": "PAGE", "jsonSchema": {"required": ["category"]}},
            {"key": None, "type": "PAGE", "jsonSchema": {"required": ["name"]}},
            {"key": "Home", "type": "SCREEN", "jsonSchema": {"required": ["category"]}},
        ]
    )
    assert [v.field for v in plan.check("page", "Pricing", {})] == ["category", "name"]
    assert [v.field for v in plan.check("page", "About", {"name": "About"})] == []
    assert [v.field for v in plan.check("screen", "Other", {})] == []
    assert [v.field for v in plan.check("screen", "Home", {})] == ["category"]


def test_allow_unplanned_lets_unknown_events_through() -> None:
    plan = parse_plan({**COMPACT, "allow_unplanned": True})
    assert plan.check("track", "Anything", {"properties": {}}) == []


def test_validation_never_writes_defaults_into_a_message() -> None:
    plan = parse_plan({"events": {"E": {"properties": {"n": {"type": "integer", "default": 3}}}}})
    message: dict[str, Any] = {"properties": {}}
    assert plan.check("track", "E", message) == []
    assert message == {"properties": {}}


def test_schemas_with_refs_and_nesting_still_report_every_violation() -> None:
    schema = {
        "definitions": {"money": {"type": "number", "minimum": 0}},
        "properties": {
            "properties": {
                "properties": {
                    "price": {"$ref": "#/definitions/money"},
                    "cart": {
                        "type": "object",
                        "properties": {"sku": {"type": "string", "pattern": "^SKU-"}},
                        "required": ["qty"],
                    },
                },
            }
        },
    }
    plan = parse_plan([{"key": "E", "type": "TRACK", "jsonSchema": schema}])
    found = plan.check("track", "E", {"properties": {"price": -1, "cart": {"sku": "x"}}})
    assert sorted((v.type, v.field, v.message) for v in found) == [
        ("format", "properties.cart.sku", "properties.cart.sku must match the pattern ^SKU-"),
        ("format", "properties.price", "properties.price must be bigger than or equal to 0"),
        ("required", "properties.cart.qty", "properties.cart.qty is required"),
    ]
    assert len(split(schema)) > 3


@pytest.mark.parametrize(
    ("plan", "error"),
    [
        ({"data": {}}, "rules"),
        ([{"type": "TRACK", "jsonSchema": {}}], "without a key"),
        ([{"key": "E", "type": "LOG", "jsonSchema": {}}], "type 'LOG'"),
        ([{"key": "E", "type": "TRACK"}], "no jsonSchema"),
        ([{"key": "E", "type": "TRACK", "jsonSchema": {"type": "nonsense"}}], "compiled"),
        ({"events": {"E": {"properties": {"a": "text"}}}}, "unknown type 'text'"),
        (
            {"events": {"E": {"properties": {"a": {"pattern": "("}}}}},
            "the track rule 'E' cannot be compiled: missing ), unterminated subpattern",
        ),
        ({"events": {"E": {"propertys": {}}}}, "unknown key(s): propertys"),
        ({"events": {"E": {"required": "a"}}}, "list of names"),
        ({"event": {}}, "unknown key(s) in the plan: event"),
        ({"allow_unplanned": "yes"}, "true or false"),
        ("plan", "a list of Segment rules or an object"),
    ],
)
def test_a_plan_that_cannot_be_used_is_refused_with_a_reason(plan: Any, error: str) -> None:
    with pytest.raises(PlanError, match=re.escape(error)):
        parse_plan(plan)


def test_load_plan_names_the_file(tmp_path: Path) -> None:
    assert load_plan(write_plan(tmp_path, "segment", "rules.json")).name == "rules.json"
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PlanError, match=r"broken\.json is not valid JSON"):
        load_plan(tmp_path / "broken.json")
    with pytest.raises(PlanError, match="cannot read the plan"):
        load_plan(tmp_path / "missing.json")


def test_without_fastjsonschema_a_plan_fails_with_one_line_naming_the_install(
    tmp_path: Path,
) -> None:
    hide = "import sys; sys.modules['fastjsonschema'] = None; from segment_clone.cli import main;"
    plan = str(write_plan(tmp_path))
    for argv in (
        ["collector", "--plan", plan, "--port", "0", "--db", str(tmp_path / "e.db")],
        ["plan", "check", plan, plan],
    ):
        result = subprocess.run(
            [sys.executable, "-c", f"{hide} sys.exit(main({argv!r}))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert result.stderr.strip().endswith(INSTALL_HINT)
        assert "pip install 'segment-clone[plan]'" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "e.db").exists()
