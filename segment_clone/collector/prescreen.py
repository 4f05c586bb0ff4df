"""A quick yes for the messages that plainly meet a plan, before fastjsonschema is asked.

fastjsonschema's generated code copies the key set of every object it checks and spends about
6 µs on a ten-property event; under a 50-rule plan that was a third of the collector's time per
event. Tracking plans use few keywords (``type``, ``enum``, ``required``, ``properties``...),
so ``screen`` compiles those into one plain function that answers True only when every schema
holds for a JSON-decoded message.

The screen is only ever trusted when it says yes. Anything else it meets (a value it is not
sure of, such as ``2.0`` for an integer or a ``dict`` subclass, or a failing check) returns
False, and fastjsonschema, which stays the judge, checks the message and names its violations.
A schema with a keyword the screen does not know gets no screen at all. ``format`` and
``pattern`` are checked by fastjsonschema's own single-keyword validators, so their meaning
cannot drift from it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from typing import Any

from .formats import bounded_formats

Screen = Callable[[Any], bool]
ANNOTATIONS = frozenset(
    {"$schema", "$id", "id", "$comment", "title", "description", "examples", "default"}
    | {"definitions", "$defs", "readOnly", "writeOnly", "deprecated"}
)
"""Keywords that check nothing (definitions only matter to ``$ref``, which is not screened)."""
OBJECT = frozenset({"properties", "required", "additionalProperties"})
ARRAY = frozenset({"items", "minItems", "maxItems"})
STRING = frozenset({"minLength", "maxLength", "pattern", "format"})
NUMBER = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
ANY = frozenset({"type", "enum", "const"})
KNOWN = ANNOTATIONS | OBJECT | ARRAY | STRING | NUMBER | ANY
TYPE_TESTS = {
    "string": "{t} is str",
    "integer": "{t} is int",  # not True, whose type is bool; 2.0 goes to fastjsonschema
    "number": "{t} is int or {t} is float",
    "boolean": "{t} is bool",
    "null": "{t} is NoneType",
    "object": "{t} is dict",
    "array": "{t} is list",
}
SCALARS = (str, int, float, bool, type(None))
NAMES = {
    "NoneType": type(None),
    "SCALAR_TYPES": frozenset(SCALARS),
    "JSON_TYPES": frozenset({*SCALARS, dict, list}),
}
MAX_DEPTH = 24
"""Schemas nested deeper are left to fastjsonschema (Python limits nested blocks)."""


class Unscreenable(Exception):
    """The schema uses something the screen does not compile."""


def screen(schemas: Sequence[Any], draft: str | None = None) -> Screen | None:
    """One function that is True when ``message`` meets every schema in ``schemas`` (the rules
    that apply to one event), or None when a schema goes beyond what is screened. ``draft`` is
    the ``$schema`` fastjsonschema checks them under, for the meaning of ``format``."""
    writer = _Writer(draft)
    try:
        for schema in schemas:
            writer.node(schema, "message", 0)
        return writer.compile()
    except (Unscreenable, SyntaxError):  # SyntaxError: too many nested loops for Python
        return None


class _Writer:
    """Writes the screen's source: nested tests that ``return False`` on the first doubt."""

    def __init__(self, draft: str | None) -> None:
        self.draft = draft
        self.lines: list[str] = []
        self.indent = 1
        self.names: dict[str, Any] = dict(NAMES)
        self.count = 0

    def compile(self) -> Screen:
        source = "def screen(message):\n" + "\n".join([*self.lines, "    return True"])
        exec(compile(source, "<tracking-plan screen>", "exec"), self.names)
        result: Screen = self.names["screen"]
        return result

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    @contextmanager
    def block(self, header: str) -> Iterator[None]:
        self.emit(header)
        self.indent += 1
        body = len(self.lines)
        yield
        if len(self.lines) == body:
            self.emit("pass")
        self.indent -= 1

    def fail_unless(self, test: str) -> None:
        self.emit(f"if not ({test}): return False")

    def name(self, prefix: str) -> str:
        """A fresh variable name."""
        self.count += 1
        return f"{prefix}{self.count}"

    def constant(self, prefix: str, value: Any) -> str:
        """A fresh name for ``value`` in the screen's globals."""
        name = self.name(prefix)
        self.names[name] = value
        return name

    def node(self, schema: Any, var: str, depth: int) -> None:
        """The tests of ``schema`` for the value in the variable ``var``."""
        if _checks_nothing(schema):
            return
        if not isinstance(schema, dict) or depth > MAX_DEPTH or not schema.keys() <= KNOWN:
            raise Unscreenable
        t = self.name("t")
        self.emit(f"{t} = type({var})")
        types = self.types(schema["type"], t) if "type" in schema else None
        if "enum" in schema:
            self.enum(schema["enum"], var, t)
        if "const" in schema:
            self.enum([schema["const"]], var, t)
        if "draft-04" in (self.draft or "") and {"exclusiveMinimum", "exclusiveMaximum"} & set(
            schema
        ):
            raise Unscreenable  # booleans that change minimum and maximum
        branches = [
            (OBJECT, {"object"}, f"{t} is dict", self.object_tests),
            (ARRAY, {"array"}, f"{t} is list", self.array_tests),
            (STRING, {"string"}, f"{t} is str", self.string_tests),
            (NUMBER, {"number", "integer"}, f"{t} is int or {t} is float", self.number_tests),
        ]
        used = [
            (kinds, test, write)
            for keywords, kinds, test, write in branches
            if keywords & schema.keys() and (types is None or kinds & types)
        ]
        if types is not None and len(used) == 1 and types <= used[0][0]:
            used[0][2](schema, var, depth)  # the type test above already chose this branch
            return
        for i, (_, test, write) in enumerate(used):
            with self.block(f"{'el' if i else ''}if {test}:"):
                write(schema, var, depth)
        if used and types is None:  # a value of no type above must still be JSON to be sure
            self.emit(f"elif {t} not in JSON_TYPES: return False")

    def types(self, names: Any, t: str) -> set[str]:
        """Return unless the type is one of ``names``; exact types, all of them JSON's."""
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not names or any(n not in TYPE_TESTS for n in names):
            raise Unscreenable
        self.fail_unless(" or ".join(TYPE_TESTS[n].format(t=t) for n in names))
        return set(names)

    def enum(self, allowed: Any, var: str, t: str) -> None:
        if not isinstance(allowed, list) or not all(isinstance(v, SCALARS) for v in allowed):
            raise Unscreenable  # lists and objects compare loosely in Python (True == 1)
        if all(type(v) is str for v in allowed):
            choices = self.constant("CHOICES", frozenset(allowed))
            self.fail_unless(f"{t} is str and {var} in {choices}")
        else:  # by type and value: True is not 1, and 1.0 goes to fastjsonschema
            choices = self.constant("CHOICES", frozenset((type(v), v) for v in allowed))
            self.fail_unless(f"{t} in SCALAR_TYPES and ({t}, {var}) in {choices}")

    def object_tests(self, schema: dict[str, Any], var: str, depth: int) -> None:
        required = schema.get("required", [])
        if not isinstance(required, list) or not all(isinstance(n, str) for n in required):
            raise Unscreenable
        if required:
            self.fail_unless(" and ".join(f"{n!r} in {var}" for n in required))
        properties = schema.get("properties", {})
        if not isinstance(properties, dict):
            raise Unscreenable
        for name, sub in properties.items():
            if _checks_nothing(sub):
                continue
            with self.block(f"if {name!r} in {var}:"):
                value = self.name("v")
                self.emit(f"{value} = {var}[{name!r}]")
                self.node(sub, value, depth + 1)
        extra = schema.get("additionalProperties", True)
        if _checks_nothing(extra):
            return
        known, key = self.constant("KNOWN", frozenset(properties)), self.name("k")
        if extra is False:
            with self.block(f"for {key} in {var}:"):
                self.emit(f"if {key} not in {known}: return False")
            return
        value = self.name("v")
        with (
            self.block(f"for {key}, {value} in {var}.items():"),
            self.block(f"if {key} not in {known}:"),
        ):
            self.node(extra, value, depth + 1)

    def array_tests(self, schema: dict[str, Any], var: str, depth: int) -> None:
        self.bounds(schema, var, "minItems", "maxItems")
        items = schema.get("items", True)
        if isinstance(items, list):
            raise Unscreenable  # the tuple form, whose extra items need additionalItems
        if not _checks_nothing(items):
            value = self.name("v")
            with self.block(f"for {value} in {var}:"):
                self.node(items, value, depth + 1)

    def string_tests(self, schema: dict[str, Any], var: str, depth: int) -> None:
        self.bounds(schema, var, "minLength", "maxLength")
        for keyword in ("pattern", "format"):
            if keyword in schema:
                if not isinstance(schema[keyword], str):
                    raise Unscreenable
                matches = _single_keyword(keyword, schema[keyword], self.draft)
                self.fail_unless(f"{self.constant('MATCHES', matches)}({var})")

    def number_tests(self, schema: dict[str, Any], var: str, depth: int) -> None:
        for keyword, fails_when in (
            ("minimum", "<"),
            ("maximum", ">"),
            ("exclusiveMinimum", "<="),
            ("exclusiveMaximum", ">="),
        ):
            if keyword in schema:
                limit = schema[keyword]
                if type(limit) not in (int, float):  # draft 4's booleans among them
                    raise Unscreenable
                self.emit(f"if {var} {fails_when} {self.constant('LIMIT', limit)}: return False")

    def bounds(self, schema: dict[str, Any], var: str, low: str, high: str) -> None:
        for keyword, fails_when in ((low, "<"), (high, ">")):
            if keyword in schema:
                limit = schema[keyword]
                if type(limit) is not int:
                    raise Unscreenable
                self.emit(f"if len({var}) {fails_when} {limit}: return False")


def _checks_nothing(schema: Any) -> bool:
    return schema is True or (isinstance(schema, dict) and schema.keys() <= ANNOTATIONS)


@cache
def _single_keyword(keyword: str, value: str, draft: str | None) -> Callable[[str], bool]:
    """fastjsonschema's own check of one ``pattern`` or ``format``, as a yes or no; cached,
    because a COMMON rule's formats recur in the screen of every event."""
    import fastjsonschema

    schema: dict[str, Any] = {keyword: value}
    if draft is not None:
        schema["$schema"] = draft
    try:
        validate = fastjsonschema.compile(schema, formats=bounded_formats(draft))
    except (fastjsonschema.JsonSchemaDefinitionException, re.error):
        raise Unscreenable from None

    def matches(text: str) -> bool:
        try:
            validate(text)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return matches
