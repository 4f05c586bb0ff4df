"""The debugger's Pretty view: the SDK call that would have produced a stored message.

Segment messages become ``analytics.track("u1", "Signed Up", {...})`` and friends, Mixpanel
records ``mp.track(...)``, ``mp.people_set(...)`` or ``mp.group_set(...)``, as Python source.
What the SDKs add by themselves (``context.library``, Mixpanel's ``token``, ``time``,
``$insert_id``, ``mp_lib``, ``$lib_version``) is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

SEGMENT_ARGS: dict[str, Sequence[tuple[str, str]]] = {
    "track": (("userId", "user_id"), ("event", "event"), ("properties", "properties")),
    "identify": (("userId", "user_id"), ("traits", "traits")),
    "group": (("userId", "user_id"), ("groupId", "group_id"), ("traits", "traits")),
    "page": (("userId", "user_id"), ("category", "category"), ("name", "name"),
             ("properties", "properties")),
    "screen": (("userId", "user_id"), ("category", "category"), ("name", "name"),
               ("properties", "properties")),
    "alias": (("previousId", "previous_id"), ("userId", "user_id")),
}  # fmt: skip
"""Each call's leading parameters, in order: the wire name and the argument name."""
MIXPANEL_ADDED = frozenset({"token", "distinct_id", "time", "$insert_id", "mp_lib", "$lib_version"})
PEOPLE_CALLS = {
    "$set": "people_set",
    "$set_once": "people_set_once",
    "$add": "people_increment",
    "$append": "people_append",
    "$union": "people_union",
    "$unset": "people_unset",
    "$remove": "people_remove",
    "$delete": "people_delete",
}
GROUP_CALLS = {op: call.replace("people_", "group_") for op, call in PEOPLE_CALLS.items()}
INLINE_WIDTH = 60
"""A dict or list is written on one line when it fits in this many characters."""
MAX_INDENTED_DEPTH = 8
"""Deeper values are written on one line: indenting each level made a message nested 200 deep
400 times its own size."""
MAX_CHARS = 200_000
"""The longest Pretty view; the rest is cut (the Raw view shows the message whole)."""


def sdk_call(source: str, type_: str, message: Mapping[str, Any]) -> str:
    if source == "mixpanel":
        return _mixpanel(type_, message)
    return _segment(type_, message)


def _segment(type_: str, message: Mapping[str, Any]) -> str:
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    params = SEGMENT_ARGS.get(type_, ())
    for wire, arg in params:
        value = message.get(wire)
        if value is None or value == {}:
            continue
        if len(positional) == params.index((wire, arg)):
            positional.append(value)  # every earlier parameter was given too
        else:
            keywords[arg] = value
    if message.get("anonymousId") is not None:
        keywords["anonymous_id"] = message["anonymousId"]
    context = message.get("context")
    if isinstance(context, dict):
        context = {k: v for k, v in context.items() if k != "library"}
    for arg, value in (("context", context), ("integrations", message.get("integrations"))):
        if value:
            keywords[arg] = value
    return call(f"analytics.{type_}", positional, keywords)


def _mixpanel(type_: str, record: Mapping[str, Any]) -> str:
    if type_ in ("track", "import"):
        props = record.get("properties")
        props = props if isinstance(props, dict) else {}
        own = {k: v for k, v in props.items() if k not in MIXPANEL_ADDED}
        who, name = props.get("distinct_id"), record.get("event")
        if type_ == "track":
            return call("mp.track", [who, name, *([own] if own else [])], {})
        return call("mp.import_data", [None, who, name, props.get("time"), own], {})
    calls, lead = (
        (PEOPLE_CALLS, [record.get("$distinct_id")])
        if type_ == "engage"
        else (GROUP_CALLS, [record.get("$group_key"), record.get("$group_id")])
    )
    for op, name in calls.items():
        if op in record:
            return call(f"mp.{name}", lead if op == "$delete" else [*lead, record[op]], {})
    return call("mp.people_update" if type_ == "engage" else "mp.group_update", [record], {})


def call(function: str, positional: Sequence[Any], keywords: Mapping[str, Any]) -> str:
    args = [literal(v, 1) for v in positional] + [
        f"{k}={literal(v, 1)}" for k, v in keywords.items()
    ]
    one_line = f"{function}({', '.join(args)})"
    if len(one_line) <= INLINE_WIDTH + 20 and "\n" not in one_line:
        return one_line
    written = f"{function}(\n" + "".join(f"    {a},\n" for a in args) + ")"
    if len(written) > MAX_CHARS:
        cut = len(written) - MAX_CHARS
        return written[:MAX_CHARS] + f"\n# ... {cut} more characters: see the Raw view"
    return written


def literal(value: Any, depth: int = 0) -> str:
    """``value`` (parsed JSON) as a Python literal, indented for ``depth`` levels; from
    ``MAX_INDENTED_DEPTH`` on, on one line, so that the size stays linear in the input's."""
    if depth >= MAX_INDENTED_DEPTH or not isinstance(value, (dict, list)):
        return _one_line(value)
    if isinstance(value, dict):
        items = [f"{_one_line(k)}: {literal(v, depth + 1)}" for k, v in value.items()]
        return _bracketed("{", items, "}", depth)
    return _bracketed("[", [literal(v, depth + 1) for v in value], "]", depth)


def _bracketed(open_: str, items: list[str], close: str, depth: int) -> str:
    if sum(len(i) + 2 for i in items) <= INLINE_WIDTH and not any("\n" in i for i in items):
        return open_ + ", ".join(items) + close
    pad = "    " * (depth + 1)
    return open_ + "\n" + "".join(f"{pad}{item},\n" for item in items) + "    " * depth + close


class _Text(str):
    """Punctuation already written, on the work stack of ``_one_line``."""


def _one_line(value: Any) -> str:
    """``value`` as a Python literal on one line, without recursion (any depth) and in time
    linear in its size."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Text):
            out.append(item)
        elif isinstance(item, str):
            out.append(orjson.dumps(item).decode())
        elif item is None or isinstance(item, (bool, int, float)):
            out.append(repr(item))
        elif isinstance(item, dict):
            stack.append(_Text("}"))
            for i, (k, v) in enumerate(reversed(item.items())):
                stack += [_Text(", ")] if i else []
                stack += [v, _Text(": "), k]
            out.append("{")
        elif isinstance(item, list):
            stack.append(_Text("]"))
            for i, v in enumerate(reversed(item)):
                stack += [_Text(", ")] if i else []
                stack.append(v)
            out.append("[")
        else:
            out.append(repr(item))
    return "".join(out)
