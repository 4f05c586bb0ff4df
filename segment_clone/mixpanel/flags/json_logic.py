"""JSON-logic, as mixpanel 5.4.1 evaluates runtime rules (it pins ``json-logic==0.7.0a0``).

Our own evaluator, with that version's semantics kept on purpose, quirks included (loose ``==``
compares strings as text, ``<`` compares numbers as floats, every argument is evaluated before
the operator runs): a rule must enrol the same contexts here as in upstream's SDK. It is not
installed as a top-level ``json_logic`` module, so it never clashes with the PyPI package that an
application may still have installed beside ``mixpanel``.

``operations`` is the table of operators by name; ``custom_operators`` adds Mixpanel's.
"""

from __future__ import annotations

import logging
from functools import reduce
from typing import Any, Callable

logger = logging.getLogger(__name__)

_MISSING = object()


def _if(*args: Any) -> Any:
    """``if``/elif chains: (condition, value) pairs, then an optional else value."""
    for index in range(0, len(args) - 1, 2):
        if args[index]:
            return args[index + 1]
    return args[-1] if len(args) % 2 else None


def _loose_equals(a: Any, b: Any) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) is bool(b)
    return bool(a == b)


def _strict_equals(a: Any, b: Any) -> bool:
    return type(a) is type(b) and bool(a == b)


def _less(a: Any, b: Any, *more: Any) -> bool:
    if {type(a), type(b)} & {int, float}:
        try:
            a, b = float(a), float(b)
        except TypeError:
            return False
    return bool(a < b) and (not more or _less(b, *more))


def _less_or_equal(a: Any, b: Any, *more: Any) -> bool:
    return (_less(a, b) or _loose_equals(a, b)) and (not more or _less_or_equal(b, *more))


def _number(value: Any) -> Any:
    """A numeric string as an int, or a float when it has a decimal point."""
    if isinstance(value, str):
        return float(value) if "." in value else int(value)
    return value


def _plus(*args: Any) -> Any:
    return sum(_number(arg) for arg in args)


def _minus(*args: Any) -> Any:
    if len(args) == 1:
        return -_number(args[0])
    return _number(args[0]) - _number(args[1])


def _times(*args: Any) -> Any:
    product: Any = 1
    for arg in args:
        product *= float(arg)
    return product


def _merge(*args: Any) -> list[Any]:
    merged: list[Any] = []
    for arg in args:
        if isinstance(arg, (list, tuple)):
            merged.extend(arg)
        else:
            merged.append(arg)
    return merged


def _contains(needle: Any, haystack: Any) -> bool:
    return needle in haystack if hasattr(haystack, "__contains__") else False


def _log(value: Any) -> Any:
    logger.info(value)
    return value


operations: dict[str, Callable[..., Any]] = {
    "==": _loose_equals,
    "===": _strict_equals,
    "!=": lambda a, b: not _loose_equals(a, b),
    "!==": lambda a, b: not _strict_equals(a, b),
    ">": lambda a, b: _less(b, a),
    ">=": lambda a, b: _less(b, a) or _loose_equals(a, b),
    "<": _less,
    "<=": _less_or_equal,
    "!": lambda a: not a,
    "!!": bool,
    "%": lambda a, b: a % b,
    "and": lambda *args: reduce(lambda acc, arg: acc and arg, args, True),
    "or": lambda *args: reduce(lambda acc, arg: acc or arg, args, False),
    "?:": lambda a, b, c: b if a else c,
    "if": _if,
    "log": _log,
    "in": _contains,
    "cat": lambda *args: "".join(str(arg) for arg in args),
    "+": _plus,
    "*": _times,
    "-": _minus,
    "/": lambda a, b=None: a if b is None else float(a) / float(b),
    "min": lambda *args: min(args),
    "max": lambda *args: max(args),
    "merge": _merge,
    "count": lambda *args: sum(1 for arg in args if arg),
}


def _var(data: Any, name: Any, default: Any = None) -> Any:
    """``data`` at the dotted path ``name`` (list items by index), or ``default``."""
    try:
        for part in str(name).split("."):
            try:
                data = data[part]
            except TypeError:
                data = data[int(part)]
    except (KeyError, TypeError, ValueError):
        return default
    return data


def _missing(data: Any, *names: Any) -> list[Any]:
    if names and isinstance(names[0], list):
        names = tuple(names[0])
    return [name for name in names if _var(data, name, _MISSING) is _MISSING]


def _missing_some(data: Any, need: int, names: list[Any]) -> list[Any]:
    if need < 1:
        return []
    absent: list[Any] = []
    found = 0
    for name in names:
        if _var(data, name, _MISSING) is _MISSING:
            absent.append(name)
        else:
            found += 1
            if found >= need:
                return []
    return absent


_DATA_OPERATORS: dict[str, Callable[..., Any]] = {
    "var": _var,
    "missing": _missing,
    "missing_some": _missing_some,
}


def jsonLogic(tests: Any, data: Any = None) -> Any:
    """Evaluate the rule ``tests`` against ``data``; an unknown operator raises ``ValueError``."""
    if not isinstance(tests, dict):
        return tests
    data = data or {}
    operator = next(iter(tests))
    raw = tests[operator]
    args = [jsonLogic(arg, data) for arg in (raw if isinstance(raw, (list, tuple)) else [raw])]
    if operator in _DATA_OPERATORS:
        return _DATA_OPERATORS[operator](data, *args)
    if operator not in operations:
        raise ValueError(f"Unrecognized operation {operator}")
    return operations[operator](*args)
