"""The plan's prescreen: it may only say yes to a message fastjsonschema accepts, it says yes to
the plainly valid messages, and it leaves to fastjsonschema what it does not compile."""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import Any

import fastjsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_clone.collector.prescreen import screen

ORDER = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "required": ["properties"],
    "properties": {
        "properties": {
            "type": "object",
            "required": ["order_id", "total"],
            "additionalProperties": False,
            "properties": {
                "order_id": {"type": "string", "minLength": 3, "maxLength": 12},
                "total": {"type": "number", "minimum": 0, "exclusiveMaximum": 10_000},
                "currency": {"enum": ["EUR", "USD"]},
                "quantity": {"type": "integer", "maximum": 99},
                "coupon": {"type": ["string", "null"], "pattern": "^[A-Z]+$"},
                "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                "site": {"type": "string", "format": "uri"},
                "level": {"enum": [1, 2, True, None, "max"]},
                "first": {"const": True},
            },
        },
        "context": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
GOOD = {
    "type": "track",
    "properties": {
        "order_id": "o-1",
        "total": 12.5,
        "currency": "EUR",
        "quantity": 2,
        "coupon": "SPRING",
        "tags": ["a", "b"],
        "site": "https://example.com/a",
        "level": 2,
        "first": True,
    },
    "context": {"ip": "127.0.0.1"},
}


def with_property(name: str, value: Any) -> dict[str, Any]:
    return {**GOOD, "properties": {**GOOD["properties"], name: value}}


def without_property(name: str) -> dict[str, Any]:
    properties = {k: v for k, v in GOOD["properties"].items() if k != name}
    return {**GOOD, "properties": properties}


def accepts(schema: Any, message: Any) -> bool:
    try:
        fastjsonschema.compile(schema, use_default=False)(message)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def test_a_plainly_valid_message_gets_a_yes() -> None:
    quick = screen([ORDER], ORDER["$schema"])
    assert quick is not None
    assert quick(GOOD) and accepts(ORDER, GOOD)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(without_property("total"), id="required"),
        pytest.param(with_property("order_id", 7), id="type"),
        pytest.param(with_property("order_id", "ab"), id="minLength"),
        pytest.param(with_property("order_id", "abcdefghijklm"), id="maxLength"),
        pytest.param(with_property("total", -1), id="minimum"),
        pytest.param(with_property("total", 10_000), id="exclusiveMaximum"),
        pytest.param(with_property("currency", "GBP"), id="enum"),
        pytest.param(with_property("quantity", 100), id="maximum"),
        pytest.param(with_property("quantity", True), id="bool is not an integer"),
        pytest.param(with_property("coupon", "spring"), id="pattern"),
        pytest.param(with_property("tags", ["a", 1]), id="items"),
        pytest.param(with_property("tags", ["a", "b", "c", "d"]), id="maxItems"),
        pytest.param(with_property("site", "not a uri"), id="format"),
        pytest.param(with_property("level", 3), id="mixed enum"),
        pytest.param(with_property("level", False), id="False is not 0 or None"),
        pytest.param(with_property("first", 1), id="const: 1 is not True"),
        pytest.param(with_property("extra", 1), id="additionalProperties false"),
        pytest.param({**GOOD, "context": {"ip": 1}}, id="additionalProperties schema"),
        pytest.param([GOOD], id="root type"),
    ],
)
def test_every_failing_check_says_no(message: Any) -> None:
    quick = screen([ORDER], ORDER["$schema"])
    assert quick is not None
    assert not quick(message)
    assert not accepts(ORDER, message)


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(with_property("quantity", 2.0), id="2.0 as an integer"),
        pytest.param(with_property("total", Decimal("12.5")), id="Decimal"),
        pytest.param({**GOOD, "properties": OrderedDict(GOOD["properties"])}, id="dict subclass"),
        pytest.param(with_property("tags", ("a", "b")), id="tuple as an array"),
    ],
)
def test_values_it_is_not_sure_of_go_to_fastjsonschema(message: Any) -> None:
    quick = screen([ORDER], ORDER["$schema"])
    assert quick is not None
    assert not quick(message)
    assert accepts(ORDER, message)  # fastjsonschema accepts them: the screen only deferred


def test_enum_and_const_both_hold() -> None:
    quick = screen([{"enum": [None, False], "const": False}])
    assert quick is not None
    assert quick(False) and not quick(None)


@pytest.mark.parametrize(
    "schema",
    [
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        {"properties": {"a": {"$ref": "#/definitions/a"}}, "definitions": {"a": {}}},
        {"patternProperties": {"^x": {"type": "string"}}},
        {"items": [{"type": "string"}]},
        {"properties": {"a": {"enum": [[1], {"b": 2}]}}},
        {"properties": {"a": {"type": "date"}}},
        {"properties": {"a": False}},
        {"$schema": "http://json-schema.org/draft-04/schema#", "exclusiveMinimum": True},
        {"minLength": 1.5},
    ],
    ids=repr,
)
def test_a_schema_beyond_the_subset_gets_no_screen(schema: dict[str, Any]) -> None:
    assert screen([ORDER, schema], schema.get("$schema")) is None


def test_a_plan_of_a_thousand_levels_gets_no_screen() -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(1000):
        deep = {"type": "array", "items": deep}
    assert screen([deep]) is None


# -- the property: a yes is always fastjsonschema's yes, and plain JSON gets its answer -------

TYPES = ["string", "integer", "number", "boolean", "null", "object", "array"]
NAMES = st.sampled_from(["a", "b", "c"])
SCALAR_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.sampled_from([0.0, 1.0, 2.0, -1.5, 2.5]),
    st.sampled_from(["", "a", "AB", "x y", "http://e.com", "2024-01-31"]),
)


def schemas() -> st.SearchStrategy[dict[str, Any]]:
    leaf = st.fixed_dictionaries(
        {},
        optional={
            "type": st.one_of(
                st.sampled_from(TYPES), st.lists(st.sampled_from(TYPES), min_size=1, max_size=3)
            ),
            "enum": st.lists(SCALAR_VALUES, min_size=1, max_size=4),
            "const": SCALAR_VALUES,
            "minimum": st.integers(-3, 3),
            "maximum": st.sampled_from([-1, 0, 1.5, 3]),
            "exclusiveMinimum": st.integers(-3, 3),
            "minLength": st.integers(0, 3),
            "maxLength": st.integers(0, 3),
            "pattern": st.sampled_from(["^[A-Z]+$", "a", "^$"]),
            "format": st.sampled_from(["uri", "date", "email"]),
            "description": st.just("annotation"),
        },
    )

    def nest(inner: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
        return st.fixed_dictionaries(
            {},
            optional={
                "type": st.sampled_from(["object", "array"]),
                "properties": st.dictionaries(NAMES, inner, max_size=3),
                "required": st.lists(NAMES, max_size=2, unique=True),
                "additionalProperties": st.one_of(st.booleans(), inner),
                "items": inner,
                "minItems": st.integers(0, 2),
                "maxItems": st.integers(0, 2),
            },
        )

    return st.recursive(leaf, nest, max_leaves=8)


def values() -> st.SearchStrategy[Any]:
    odd = st.sampled_from([Decimal("1"), (1, 2), OrderedDict(a=1), b"a"])
    return st.recursive(
        st.one_of(SCALAR_VALUES, odd),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(NAMES, inner, max_size=3)
        ),
        max_leaves=10,
    )


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(schemas(), st.lists(values(), min_size=1, max_size=8))
def test_the_screen_never_says_yes_where_fastjsonschema_says_no(
    schema: dict[str, Any], messages: list[Any]
) -> None:
    try:
        fastjsonschema.compile(schema, use_default=False)
    except fastjsonschema.JsonSchemaDefinitionException:
        return  # a schema fastjsonschema refuses never reaches a plan
    quick = screen([schema])
    assert quick is not None  # everything generated is within the subset
    for message in messages:
        if quick(message):
            assert accepts(schema, message)
        elif plain(message) and plain(schema):  # nothing to doubt: the answers agree
            assert not accepts(schema, message)


def plain(value: Any) -> bool:
    """Only JSON's own types, and no float equal to an integer (``2.0`` or ``1 == 1.0``)."""
    if type(value) is dict:
        return all(plain(v) for v in value.values())
    if type(value) is list:
        return all(plain(v) for v in value)
    if type(value) is float:
        return not value.is_integer()
    return type(value) in (str, int, bool, type(None))


def test_a_common_rules_format_is_compiled_once_for_every_event() -> None:
    from segment_clone.collector import prescreen
    from segment_clone.collector.plan import parse_plan

    common = {"properties": {"timestamp": {"type": "string", "format": "date-time"}}}
    rules = [{"key": f"E{n}", "type": "TRACK", "jsonSchema": {}} for n in range(5)]
    draft = "http://json-schema.org/draft-06/schema#"  # a key no other test caches
    rules.append({"key": None, "type": "COMMON", "jsonSchema": {"$schema": draft, **common}})
    before = prescreen._single_keyword.cache_info()
    plan = parse_plan(rules)
    after = prescreen._single_keyword.cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits >= 5
    good = {"type": "track", "event": "E1", "timestamp": "2026-11-30T12:00:00Z"}
    assert plan.check("track", "E1", good) == []
    bad = {**good, "timestamp": "yesterday"}
    assert [v.type for v in plan.check("track", "E3", bad)] == ["format"]
