"""Scopes: the identity and context of the work in progress (a request, a task), applied to
every message built inside it.

A scope lives in a ``contextvars.ContextVar``, so threads each have their own and asyncio tasks
inherit the one they were created in. Entering a scope merges it with the enclosing one once;
a message built inside pays one lookup and a few dict merges, and outside any scope only the
lookup, which finds nothing.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from contextvars import ContextVar, Token
from typing import Any, Callable, TypeVar, cast

from .utils import require, stringify_id

F = TypeVar("F", bound=Callable[..., Any])
Resolver = Callable[[], Any]
"""Returns a user id, or None; called once, when a message first needs the scope's identity."""

_EMPTY: dict[str, Any] = {}
log = logging.getLogger("segment")


class Frame:
    """The merged values of the innermost scope and those around it; immutable once built,
    except that a lazy user id is resolved once."""

    __slots__ = (
        "_resolver",
        "anonymous_id",
        "context",
        "integrations",
        "previous",
        "properties",
        "user_id",
    )

    def __init__(
        self,
        user_id: str | None,
        anonymous_id: str | None,
        context: dict[str, Any],
        properties: dict[str, Any],
        integrations: dict[str, Any],
        resolver: Resolver | None = None,
        previous: Frame | None = None,
    ) -> None:
        self.user_id = user_id
        self.anonymous_id = anonymous_id
        self.context = context
        self.properties = properties
        self.integrations = integrations
        self._resolver = resolver
        self.previous = previous
        """What was active when this frame was entered: what leaving it restores."""

    def resolve(self) -> None:
        """Run the lazy user id resolver, once; a resolver that fails gives no user id."""
        resolver, self._resolver = self._resolver, None
        if resolver is None:
            return
        try:
            value = resolver()
        except Exception:  # an application's resolver must never fail a message
            log.warning("scope: the user id resolver failed", exc_info=True)
            return
        if value is not None and value != "":
            self.user_id = stringify_id(value)

    def resolved_user_id(self) -> str | None:
        self.resolve()
        return self.user_id

    def has_identity(self) -> bool:
        if self._resolver is not None:
            self.resolve()
        return self.user_id is not None or self.anonymous_id is not None

    def apply(self, msg: dict[str, Any]) -> None:
        """Fill ``msg``'s ids, ``properties`` and ``integrations`` from the scope (the call's
        keys win); the caller merges ``context`` while it adds the library.

        A call that names no identity takes the scope's. A call that names one keeps only what
        it names, so an event about another user never carries this request's anonymous id;
        except that a call naming the scope's own user id also gets the scope's anonymous id.
        """
        if self._resolver is not None:
            self.resolve()
        if msg["type"] != "alias":
            user_id = msg["userId"]
            if user_id is None and msg["anonymousId"] is None:
                msg["userId"] = self.user_id
                msg["anonymousId"] = self.anonymous_id
            elif (
                msg["anonymousId"] is None
                and self.anonymous_id is not None
                and user_id is not None
                and str(user_id) == self.user_id
            ):
                msg["anonymousId"] = self.anonymous_id
        if self.properties and "properties" in msg:
            msg["properties"] = {**self.properties, **msg["properties"]}
        if self.integrations:
            msg["integrations"] = {**self.integrations, **msg["integrations"]}


_CURRENT: ContextVar[Frame | None] = ContextVar("segment_clone_scope", default=None)


current_frame = _CURRENT.get
"""The active scope's frame, or None outside any scope: a bound method, the cheapest call there
is, since ``track()`` makes it on every message."""


def enter(frame: Frame) -> Token[Frame | None]:
    """Make ``frame`` active until ``leave`` (for hooks that run around someone else's code,
    such as Celery's task signals)."""
    return _CURRENT.set(frame)


def leave(token: Token[Frame | None]) -> None:
    _CURRENT.reset(token)


class Scope:
    """``analytics.scope(...)``: identity and context for every message built inside; a
    context manager, and a decorator for sync and async functions.

    Explicit arguments of a call win; ``context``, ``properties`` and ``integrations`` merge key
    by key; nested scopes inherit from the enclosing one unless ``fresh``. Built on
    ``contextvars``, so asyncio tasks inherit it, and a thread carries it with
    ``contextvars.copy_context().run``. ``user_id_resolver`` gives the user id lazily, when a
    message first needs it. Reusable, and safe to enter from many threads and tasks at once.
    """

    def __init__(
        self,
        user_id: Any = None,
        anonymous_id: Any = None,
        context: dict[str, Any] | None = None,
        properties: dict[str, Any] | None = None,
        integrations: dict[str, Any] | None = None,
        fresh: bool = False,
        *,
        user_id_resolver: Resolver | None = None,
    ) -> None:
        for name, value in (
            ("context", context),
            ("properties", properties),
            ("integrations", integrations),
        ):
            if value is not None:
                require(name, value, dict)
        self._user_id = None if user_id is None else stringify_id(user_id)
        self._anonymous_id = None if anonymous_id is None else stringify_id(anonymous_id)
        self._context = context or _EMPTY
        self._properties = properties or _EMPTY
        self._integrations = integrations or _EMPTY
        self._fresh = fresh
        self._resolver = user_id_resolver

    def frame(self) -> Frame:
        """This scope merged with the active one (unless ``fresh``): its values win."""
        previous = _CURRENT.get()
        outer = None if self._fresh else previous
        if outer is None:
            outer = Frame(None, None, _EMPTY, _EMPTY, _EMPTY)
        resolver = self._resolver
        if self._user_id is not None:
            resolver = None
        elif resolver is None and outer._resolver is not None:
            resolver = outer.resolved_user_id  # resolved once, in the outer scope, when needed
        return Frame(
            self._user_id if self._user_id is not None else outer.user_id,
            self._anonymous_id if self._anonymous_id is not None else outer.anonymous_id,
            _merge(outer.context, self._context),
            _merge(outer.properties, self._properties),
            _merge(outer.integrations, self._integrations),
            resolver,
            previous,
        )

    def activate(self) -> None:
        """Enter for good, in a context made for one unit of work (a request run with
        ``contextvars.copy_context().run``): the context is dropped with it, so no exit."""
        _CURRENT.set(self.frame())

    def __enter__(self) -> Scope:
        _CURRENT.set(self.frame())
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Restore what was active on entry. The frame remembers it, not this object, so one
        ``Scope`` can be entered by many threads and tasks at once."""
        frame = _CURRENT.get()
        _CURRENT.set(None if frame is None else frame.previous)

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                token = _CURRENT.set(self.frame())
                try:
                    return await func(*args, **kwargs)
                finally:
                    _CURRENT.reset(token)

            return cast(F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            token = _CURRENT.set(self.frame())
            try:
                return func(*args, **kwargs)
            finally:
                _CURRENT.reset(token)

        return cast(F, run)


def _merge(outer: dict[str, Any], inner: dict[str, Any]) -> dict[str, Any]:
    if not outer:
        return inner
    return {**outer, **inner} if inner else outer


def _reset_after_fork() -> None:
    """A forked child starts outside any scope: the request or task it was forked in is the
    parent's."""
    _CURRENT.set(None)


os.register_at_fork(after_in_child=_reset_after_fork)
