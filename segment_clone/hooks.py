"""``before_send``: the caller-side hooks that may change or drop a message before it is queued.

Hooks run on the caller's thread, on a private copy decoded from the message's encoded bytes
(the faces do the decoding): a hook can change anything, nested values included, without
touching the caller's objects, and it sees values as they will be sent. What the chain returns
is checked and encoded again, so the queue holds the final bytes. A hook that fails drops the
message (fail closed): sending the original could leak exactly what the hook was to remove.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any, Callable, Optional, Union

from .errors import MessageDropped
from .stats import DropReporter

Message = dict[str, Any]
BeforeSend = Callable[[Message], Optional[Message]]
BeforeSendOption = Union[BeforeSend, Sequence[BeforeSend], None]
Check = Callable[[Message], None]

DROPPED = "before_send"
"""``stats()["dropped"]`` key for messages a hook chose to drop (not passed to ``on_error``)."""
FAILED = "before_send_error"
"""Key and ``MessageDropped.reason`` for messages dropped because a hook failed."""

_IDS_OF_TYPE: dict[str, tuple[tuple[str, ...], ...]] = {
    "identify": (("userId", "anonymousId"),),
    "track": (("userId", "anonymousId"),),
    "page": (("userId", "anonymousId"),),
    "screen": (("userId", "anonymousId"),),
    "group": (("userId", "anonymousId"), ("groupId",)),
    "alias": (("previousId",), ("userId",)),
}
"""Per message type, groups of fields of which at least one must be a non-empty string."""


def hook_chain(before_send: BeforeSendOption) -> tuple[BeforeSend, ...] | None:
    """Normalise ``before_send`` to a tuple of hooks, or None when there are none.

    Coroutine functions are refused here, at construction: the hook must have finished before
    the call returns, or the call would report as accepted a message that a hook then drops.
    """
    if before_send is None:
        return None
    hooks = tuple(before_send) if isinstance(before_send, (list, tuple)) else (before_send,)
    for hook in hooks:
        if not callable(hook):
            raise TypeError(f"before_send must be callable, got: {type(hook).__name__}")
        if inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(type(hook).__call__):
            raise TypeError(
                f"before_send hook {_name(hook)} is a coroutine function; hooks run inside "
                "track() and must be synchronous"
            )
    return hooks or None


def run_hooks(
    hooks: tuple[BeforeSend, ...],
    message: Message,
    check: Check,
    reporter: DropReporter,
    debug: bool,
) -> Message | None:
    """What ``hooks`` make of ``message`` (a private copy), checked by ``check``; None if the
    message is dropped.

    A hook returning None stops the chain; the drop is counted under ``before_send`` only. A
    hook that raises or returns a non-dict, or a result that ``check`` refuses (``ValueError``),
    is counted under ``before_send_error``, logged and passed to ``on_error``; with ``debug``
    the error is raised.
    """
    for hook in hooks:
        try:
            result = hook(message)
        except Exception as e:
            detail = f"before_send hook {_name(hook)} raised {type(e).__name__}: {e}"
            _failed(detail, e, message, reporter, debug)
            return None
        if result is None:
            reporter.stats.add_dropped(DROPPED, 1)
            return None
        if type(result) is not dict:
            error = TypeError(_not_a_dict(hook, result))
            _failed(str(error), error, message, reporter, debug)
            return None
        message = result
    try:
        check(message)
    except ValueError as e:
        detail = f"the message before_send returned is invalid: {e}"
        _failed(detail, e, message, reporter, debug)
        return None
    return message


def _failed(
    detail: str, cause: Exception, message: Message, reporter: DropReporter, debug: bool
) -> None:
    """Drop ``message`` because of ``cause``: count, log and report it; raise it if ``debug``."""
    dropped = MessageDropped(FAILED, detail)
    dropped.__cause__ = cause
    reporter.report(FAILED, dropped, [message])
    if debug:
        raise cause


def check_segment_message(message: Message) -> None:
    """Refuse what the tracking API would: an unknown type, missing ids, a non-string
    messageId. (The size is checked on the encoded bytes, as for every message.)"""
    kind = message.get("type")
    if kind not in _IDS_OF_TYPE:
        raise ValueError(f"type must be one of {', '.join(_IDS_OF_TYPE)}, got: {kind!r}")
    if type(message.get("messageId")) is not str:
        raise ValueError(f"messageId must be a str, got: {message.get('messageId')!r}")
    for fields in _IDS_OF_TYPE[kind]:
        for field in fields:
            value = message.get(field)
            if type(value) is str and value:
                break
        else:
            raise ValueError(f"a {kind} message needs {' or '.join(fields)} as a non-empty str")


def _not_a_dict(hook: BeforeSend, result: object) -> str:
    if inspect.iscoroutine(result):
        result.close()  # never awaited: close it rather than leave a warning for later
        return f"before_send hook {_name(hook)} returned a coroutine; hooks must be synchronous"
    return f"before_send hook {_name(hook)} returned {type(result).__name__}, not a dict or None"


def _name(hook: object) -> str:
    return getattr(hook, "__qualname__", None) or repr(hook)


__all__ = ["DROPPED", "FAILED", "BeforeSend", "check_segment_message", "hook_chain", "run_hooks"]
