"""Django middleware, sync and async: a scope per request.

Add ``"segment_clone.integrations.django.SegmentMiddleware"`` to ``MIDDLEWARE`` after
``AuthenticationMiddleware``. Configured by the optional ``SEGMENT_CLONE`` setting::

    SEGMENT_CLONE = {
        "TRUSTED_PROXIES": ["10.0.0.0/8"],  # whose X-Forwarded-For is believed
        "USER_ID": "myapp.analytics.user_id",  # request -> user id or None (dotted path)
    }

The default user id is ``request.user.pk`` for an authenticated user. Under sync Django it is
read only when a message first needs it (no session lookup for a request that tracks nothing);
under async Django it is read once at the start with ``request.auser()``, since touching
``request.user`` from a coroutine would query the database on the event loop.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.utils.module_loading import import_string

from ..scopes import Resolver, Scope
from .http import TrustedProxies, UserIdOf
from .wsgi import environ_scope

log = logging.getLogger("segment")


def authenticated_user_id(request: Any) -> Any:
    """``request.user.pk`` for an authenticated user, else None."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return user.pk


class SegmentMiddleware:
    """Opens a scope around each request, from Django's ``request.META`` and user."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        options: dict[str, Any] = getattr(settings, "SEGMENT_CLONE", {})
        self.trusted = TrustedProxies(options.get("TRUSTED_PROXIES", ()))
        user_id = options.get("USER_ID", authenticated_user_id)
        self.user_id: UserIdOf = import_string(user_id) if isinstance(user_id, str) else user_id

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self.__acall__(request)
        with self._scope(request, lambda: self.user_id(request)):
            return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        resolver: Resolver | None = None
        if self.user_id is authenticated_user_id and hasattr(request, "auser"):
            user_id = await _auser_id(request)
            resolver = None if user_id is None else lambda: user_id
        else:
            resolver = lambda: self.user_id(request)  # noqa: E731
        with self._scope(request, resolver):
            return await self.get_response(request)

    def _scope(self, request: Any, resolver: Resolver | None) -> Scope:
        try:
            scheme = request.scheme
        except Exception:  # a Host that fails ALLOWED_HOSTS-style checks must not fail here
            scheme = None
        return environ_scope(request.META, self.trusted, resolver, scheme)


async def _auser_id(request: Any) -> Any:
    try:
        user = await request.auser()
    except Exception:
        log.warning("scope: could not read the request's user", exc_info=True)
        return None
    return user.pk if user is not None and user.is_authenticated else None
