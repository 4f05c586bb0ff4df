"""Tracking plans: read a plan file, compile it once, check each message against it.

Two shapes are read (see ``load_plan``): the rules of Segment's Public API, whose JSON Schemas
describe a whole message, and a compact hand-written form keyed by event name. Both become the
same set of JSON Schemas, compiled with fastjsonschema (an optional dependency, the ``plan``
extra) with ``use_default=False`` so that validation never writes into a message.

A valid message, the common case, costs one call of a ``prescreen`` function (a quick yes for
plainly valid messages, about a third of fastjsonschema's time), or of the compiled schema when
the screen is not sure. fastjsonschema stops at the first error, so a message that fails is
checked again against the schema's parts (one per keyword and per property, compiled on first
need), so that every violation is reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Union

import orjson

from .formats import bounded_formats
from .prescreen import Screen, screen

INSTALL_HINT = "tracking plans need fastjsonschema: pip install 'segment-clone[plan]'"
VIOLATION_TYPES = ("required", "type", "enum", "format", "additional", "unplanned")
RULE_TYPES = {
    "TRACK": "track",
    "IDENTIFY": "identify",
    "GROUP": "group",
    "PAGE": "page",
    "SCREEN": "screen",
    "COMMON": "common",
}
KINDS = ("track", "identify", "group", "page", "screen", "alias")
NAMED_KINDS = ("track", "page", "screen")
"""Kinds whose rules have a key: the event, page or screen name."""
COMPACT_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
BLOCK_KEYS = {"properties", "required", "allow_additional"}
"""What a compact event block may hold (``identify`` and ``group`` hold ``traits``)."""
ROOT_KEYWORDS = ("$schema", "definitions", "$defs")
"""Kept in every part of a split schema, so that ``$ref`` and the draft still resolve."""
NOT_A_CHECK = {"properties", "patternProperties", "title", "description", "$comment", "$id"}
NOT_A_CHECK |= {"id", "examples", "default", *ROOT_KEYWORDS}
UNSPLIT = {"$ref", "allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependencies"}
UNSPLIT |= {"dependentRequired", "dependentSchemas", "unevaluatedProperties"}
"""Keywords whose meaning depends on others at the same level: such a level is kept whole."""

Validator = Callable[[Any], Any]
Schema = Union[dict[str, Any], bool]


class PlanError(ValueError):
    """A plan that cannot be read or compiled; the message says where."""


@dataclass(frozen=True)
class Violation:
    """One way a message breaks the plan: ``type`` (see ``VIOLATION_TYPES``), the ``field``
    path (``properties.order_id``) and a sentence for people."""

    type: str
    field: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"type": self.type, "field": self.field, "message": self.message}


@dataclass
class Rule:
    """One JSON Schema of the plan, and the parts it is split into to find every violation of
    a message that failed it (compiled on first need: most messages never get here)."""

    schema: dict[str, Any]
    where: str
    _parts: list[Validator] | None = field(default=None, repr=False)

    def violations(self, message: Mapping[str, Any], error: type[Exception]) -> list[Violation]:
        if self._parts is None:
            self._parts = [_compile(part, self.where) for part in split(self.schema)]
        found: list[Violation] = []
        for part in self._parts:
            try:
                part(message)
            except error as e:
                found.extend(v for v in describe(e) if v not in found)
        return found


class Plan:
    """The rules of one plan by message kind and key (event, page or screen name), compiled
    once: each kind and key gets one function that runs all of its rules and the common ones.

    ``check(kind, key, message)`` returns the violations of a Segment-shaped message. A track
    event with no rule of its own is ``unplanned`` unless ``allow_unplanned``; page and screen
    rules without a key apply to every page (screen), those with one to the pages of that name;
    identify and group rules apply to every identify (group).
    """

    def __init__(self, rules: Iterable[tuple[str, str | None, dict[str, Any]]], *,
                 allow_unplanned: bool = False, name: str = "plan") -> None:  # fmt: skip
        self.name = name
        self.allow_unplanned = allow_unplanned
        self._error: type[Exception] = _fastjsonschema().JsonSchemaValueException
        self._common: list[Rule] = []
        self._own: dict[tuple[str, str | None], list[Rule]] = {}
        self.size = 0
        for kind, key, schema in rules:
            self.size += 1
            named = key if kind in NAMED_KINDS else None
            rule = Rule(schema, f"the {kind} rule" + (f" {named!r}" if named else ""))
            if kind == "common":
                self._common.append(rule)
            else:
                self._own.setdefault((kind, named), []).append(rule)
        self._checks: dict[tuple[str, str | None], tuple[Screen | None, Validator]] = {}
        for kind, key in {*self._own, *((kind, None) for kind in KINDS)}:
            applying = self.rules_for(kind, key)
            if applying:
                self._checks[(kind, key)] = _compile_all(applying)

    def rules_for(self, kind: str, key: str | None) -> list[Rule]:
        own = self._own.get((kind, key), [])
        if key is not None and kind != "track":
            own = own + self._own.get((kind, None), [])
        return own + self._common

    def check(self, kind: str, key: str | None, message: Mapping[str, Any]) -> list[Violation]:
        found: list[Violation] = []
        planned = (kind, key)
        if planned not in self._own:  # no rule of its own: the kind's general ones apply
            if kind == "track" and not self.allow_unplanned:
                name = "an event without a name" if key is None else repr(key)
                found.append(Violation("unplanned", "event", f"{name} is not in the plan"))
            planned = (kind, None)
        checks = self._checks.get(planned)
        if checks is None:
            return found
        quick, check = checks
        if quick is not None and quick(message):
            return found
        try:
            check(message)
        except self._error:
            for rule in self.rules_for(*planned):
                found.extend(rule.violations(message, self._error))
        return found

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "rules": self.size, "allow_unplanned": self.allow_unplanned}


# -- reading a plan --------------------------------------------------------------------------


def load_plan(path: str | Path) -> Plan:
    """Read and compile the plan in ``path``; ``PlanError`` when it cannot be used."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as e:
        raise PlanError(f"cannot read the plan {path}: {e.strerror}") from None
    except orjson.JSONDecodeError as e:
        raise PlanError(f"the plan {path} is not valid JSON: {e}") from None
    return parse_plan(data, name=Path(path).name)


def parse_plan(data: Any, name: str = "plan") -> Plan:
    """A ``Plan`` from either shape: Segment's ``{"data": {"rules": [...]}}`` or bare list of
    rules, or the compact form (an object with ``events``, ``identify``, ``group``)."""
    _fastjsonschema()  # say what to install before reading anything else
    if isinstance(data, dict) and "data" in data:
        data = data["data"].get("rules") if isinstance(data["data"], dict) else None
        if data is None:
            raise PlanError('a Segment plan has its rules in {"data": {"rules": [...]}}')
    if isinstance(data, list):
        return Plan(segment_rules(data), name=name)
    if isinstance(data, dict):
        rules, allow_unplanned = compact_rules(data)
        return Plan(rules, allow_unplanned=allow_unplanned, name=name)
    raise PlanError("a plan is a list of Segment rules or an object (the compact form)")


def segment_rules(rules: list[Any]) -> Iterator[tuple[str, str | None, dict[str, Any]]]:
    """Segment Public API rules, the latest ``version`` of each ``(type, key)``."""
    latest: dict[tuple[str, str | None], tuple[Any, dict[str, Any]]] = {}
    for i, rule in enumerate(rules):
        where = f"rule {i}"
        if not isinstance(rule, dict):
            raise PlanError(f"{where} is not an object")
        kind = RULE_TYPES.get(str(rule.get("type")).upper())
        if kind is None:
            raise PlanError(
                f"{where} has type {rule.get('type')!r}, not one of {'|'.join(RULE_TYPES)}"
            )
        key = rule.get("key")
        if key is not None and not isinstance(key, str):
            raise PlanError(f"{where} has a key that is not a string")
        if kind == "track" and not key:
            raise PlanError(f"{where} is a TRACK rule without a key (the event name)")
        schema = rule.get("jsonSchema")
        if not isinstance(schema, dict):
            raise PlanError(f"{where} ({key or kind}) has no jsonSchema object")
        version = rule.get("version") or 0
        if not isinstance(version, int):
            raise PlanError(f"{where} ({key or kind}) has a version that is not a number")
        previous = latest.get((kind, key))
        if previous is None or version >= previous[0]:
            latest[(kind, key)] = (version, schema)
    for (kind, key), (_, schema) in latest.items():
        yield kind, (None if kind == "common" else key or None), schema


def compact_rules(
    plan: dict[str, Any],
) -> tuple[list[tuple[str, str | None, dict[str, Any]]], bool]:
    """The compact form as JSON Schemas of whole messages, and its ``allow_unplanned``."""
    unknown = set(plan) - {"events", "identify", "group", "allow_unplanned"}
    if unknown:
        raise PlanError(f"unknown key(s) in the plan: {', '.join(sorted(unknown))}")
    allow_unplanned = plan.get("allow_unplanned", False)
    if not isinstance(allow_unplanned, bool):
        raise PlanError("allow_unplanned must be true or false")
    events = plan.get("events", {})
    if not isinstance(events, dict):
        raise PlanError("events must be an object keyed by event name")
    rules: list[tuple[str, str | None, dict[str, Any]]] = [
        ("track", name, _message_schema("properties", block, f"event {name!r}"))
        for name, block in events.items()
    ]
    for kind in ("identify", "group"):
        if kind in plan:
            rules.append((kind, None, _message_schema("traits", plan[kind], kind)))
    return rules, allow_unplanned


def _message_schema(part: str, block: Any, where: str) -> dict[str, Any]:
    """``{part: {fields}, required, allow_additional}`` as a schema of the whole message."""
    if not isinstance(block, dict):
        raise PlanError(f"{where} must be an object")
    allowed = BLOCK_KEYS if part == "properties" else (BLOCK_KEYS - {"properties"}) | {"traits"}
    unknown = set(block) - allowed
    if unknown:
        raise PlanError(f"{where} has unknown key(s): {', '.join(sorted(unknown))}")
    fields = block.get(part, {})
    required = block.get("required", [])
    if not isinstance(fields, dict):
        raise PlanError(f"{where}: {part} must be an object")
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise PlanError(f"{where}: required must be a list of names")
    inner: dict[str, Any] = {
        "type": "object",
        "properties": {n: _field_schema(s, f"{where} {part}.{n}") for n, s in fields.items()},
    }
    for name in required:
        inner["properties"].setdefault(name, {})
    if required:
        inner["required"] = required
    if block.get("allow_additional", True) is False:
        inner["additionalProperties"] = False
    return {"type": "object", "properties": {part: inner}}


def _field_schema(spec: Any, where: str) -> Schema:
    """A type name (``"string"``, ``"any"``...), a list of allowed values, or a JSON Schema."""
    if spec == "any":
        return {}
    if isinstance(spec, str):
        if spec not in COMPACT_TYPES:
            raise PlanError(f"{where}: unknown type {spec!r} (use one of {COMPACT_TYPES} or any)")
        return {"type": spec}
    if isinstance(spec, list):
        if not spec:
            raise PlanError(f"{where}: a list of allowed values must not be empty")
        return {"enum": spec}
    if isinstance(spec, dict):
        return spec
    raise PlanError(f"{where}: give a type name, a list of allowed values or a JSON Schema")


# -- compiling and reporting -----------------------------------------------------------------


def _fastjsonschema() -> Any:
    try:
        import fastjsonschema
    except ImportError:
        raise PlanError(INSTALL_HINT) from None
    return fastjsonschema


def _compile(schema: Schema, where: str) -> Validator:
    fastjsonschema = _fastjsonschema()
    try:
        draft = schema.get("$schema") if isinstance(schema, dict) else None
        draft = draft if isinstance(draft, str) else None
        validator: Validator = fastjsonschema.compile(
            schema, use_default=False, formats=bounded_formats(draft)
        )
    except (fastjsonschema.JsonSchemaDefinitionException, re.error) as e:  # re: a bad pattern
        raise PlanError(f"the schema of {where} cannot be compiled: {e}") from None
    return validator


def _compile_all(rules: list[Rule]) -> tuple[Screen | None, Validator]:
    """One function that checks every rule: their schemas under ``allOf``, with the
    definitions they refer to lifted to the root, where ``$ref`` looks for them; and its
    prescreen, under the same draft (none when the rules must be checked in turn)."""
    schemas = [r.schema for r in rules]
    if len(rules) == 1:
        validator = _compile(schemas[0], rules[0].where)
        return screen(schemas, schemas[0].get("$schema")), validator
    combined: dict[str, Any] = {"allOf": schemas}
    for keyword in ROOT_KEYWORDS:
        for rule in rules:
            value = rule.schema.get(keyword)
            if keyword == "$schema" and value is not None:
                combined.setdefault(keyword, value)
            elif isinstance(value, dict):
                lifted = combined.setdefault(keyword, {})
                if any(lifted.get(name, d) != d for name, d in value.items()):
                    return None, _in_turn([_compile(r.schema, r.where) for r in rules])
                lifted.update(value)
    try:
        validator = _compile(combined, "the plan")
    except PlanError:
        for rule in rules:
            _compile(rule.schema, rule.where)  # names the rule that cannot be compiled
        raise
    return screen(schemas, combined.get("$schema")), validator


def _in_turn(validators: list[Validator]) -> Validator:
    """Rules whose definitions clash, checked one after the other."""

    def check(message: Any) -> None:
        for validator in validators:
            validator(message)

    return check


def split(schema: Schema) -> list[Schema]:
    """Schemas that together check what ``schema`` checks, each failing on its own: one per
    keyword of each object level and one per leaf property, at the same place in the message.
    Levels with combinators (``anyOf``, ``$ref``...) are not split further."""
    root = {k: schema[k] for k in ROOT_KEYWORDS if isinstance(schema, dict) and k in schema}
    return list(_split(schema, lambda s: {**s, **root} if isinstance(s, dict) else s))


def _split(schema: Schema, wrap: Callable[[Schema], Schema]) -> Iterator[Schema]:
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(schema, dict) or not isinstance(props, dict) or UNSPLIT & schema.keys():
        yield wrap(schema)
        return
    names_only = {
        "properties": {name: {} for name in props},
        **({"patternProperties": schema["patternProperties"]} if "patternProperties" in schema
           else {}),
    }  # fmt: skip
    for keyword, value in schema.items():
        if keyword not in NOT_A_CHECK:
            yield wrap({keyword: value, **names_only})
    for name, sub in props.items():
        yield from _split(sub, partial(_under, wrap, name))


def _under(wrap: Callable[[Schema], Schema], name: str, schema: Schema) -> Schema:
    """``schema`` placed at property ``name`` of where ``wrap`` places things."""
    return wrap({"properties": {name: schema}})


def describe(error: Any) -> list[Violation]:
    """fastjsonschema's ``JsonSchemaValueException`` as violations, in the plan's words."""
    where = _field(error.name)
    rule, value, definition = error.rule, error.value, error.rule_definition
    if rule == "required":
        missing = [n for n in definition if not (isinstance(value, dict) and n in value)]
        return [Violation("required", _join(where, n), f"{_join(where, n)} is required")
                for n in missing]  # fmt: skip
    if rule == "additionalProperties":
        schema = error.definition
        return [
            Violation("additional", _join(where, n), f"{_join(where, n)} is not in the plan")
            for n in _extras(value, schema)
        ]
    subject = where or "the message"
    if rule == "type":
        expected = " or ".join(definition) if isinstance(definition, list) else definition
        return [Violation("type", where, f"{subject} must be {_a(expected)}, not {_kind(value)}")]
    if rule in ("enum", "const"):
        allowed = definition if rule == "enum" else [definition]
        choices = ", ".join(orjson.dumps(v).decode() for v in allowed)
        return [Violation("enum", where, f"{subject} must be one of {choices}")]
    if rule == "format":
        return [Violation("format", where, f"{subject} must be a valid {definition}")]
    if rule == "pattern":
        return [Violation("format", where, f"{subject} must match the pattern {definition}")]
    text = str(error.message)
    text = subject + text[len(error.name) :] if text.startswith(error.name) else text
    return [Violation("format", where, text)]


def _extras(value: Any, schema: Any) -> list[str]:
    if not isinstance(value, dict) or not isinstance(schema, dict):
        return []
    known = schema.get("properties") or {}
    patterns = [re.compile(p) for p in schema.get("patternProperties") or {}]
    return [k for k in value if k not in known and not any(p.search(k) for p in patterns)]


def _field(name: str) -> str:
    """``data.properties.order_id`` as ``properties.order_id`` (the message root is "")."""
    return name[5:] if name.startswith("data.") else name[4:] if name.startswith("data") else name


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _a(type_name: str) -> str:
    return ("an " if type_name[:1] in "aeiou" else "a ") + type_name


JSON_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "an array"),
    (dict, "an object"),
)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return next((name for t, name in JSON_KINDS if isinstance(value, t)), type(value).__name__)
