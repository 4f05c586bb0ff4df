"""The Django middleware, sync and async, in real Django request handling: a scope per request
from ``request.META`` and the request's user, configured by the ``SEGMENT_CLONE`` setting."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, Callable

import django
import pytest
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.test import AsyncClient
from django.test import Client as DjangoClient
from django.test.utils import override_settings
from django.urls import path

from segment_clone import Client
from segment_clone.collector import Collector

if not settings.configured:
    settings.configure(
        SECRET_KEY="test-only",
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        DATABASES={},
    )
    django.setup()

MIDDLEWARE = [
    f"{__name__}.FakeAuthentication",
    "segment_clone.integrations.django.SegmentMiddleware",
]
TRACKER: list[Client] = []


class User:
    """What ``AuthenticationMiddleware`` would put on the request, without a database."""

    def __init__(self, pk: int | None) -> None:
        self.pk = pk
        self.is_authenticated = pk is not None


class FakeAuthentication:
    """Stands in for ``AuthenticationMiddleware``: the user named by the ``X-User`` header."""

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        header = request.headers.get("X-User")
        user = User(int(header) if header else None)
        request.user = user  # type: ignore[attr-defined]

        async def auser() -> User:
            return user

        request.auser = auser  # type: ignore[attr-defined]
        return self.get_response(request)


def signup(request: HttpRequest) -> JsonResponse:
    ok, _ = TRACKER[0].track(event="Signed Up")
    return JsonResponse({"ok": ok})


async def asignup(request: HttpRequest) -> JsonResponse:
    ok, _ = TRACKER[0].track(event="Signed Up")
    return JsonResponse({"ok": ok})


urlpatterns = [path("signup", signup), path("asignup", asignup)]


def custom_user_id(request: HttpRequest) -> str:
    return f"custom-{request.headers.get('X-User')}"


@pytest.fixture
def tracker(patient_client: Client) -> Iterator[Client]:
    TRACKER.append(patient_client)
    with override_settings(MIDDLEWARE=MIDDLEWARE):
        yield patient_client
    TRACKER.clear()


def test_a_sync_request_gets_its_context_and_the_authenticated_user(
    tracker: Client, collector: Collector
) -> None:
    http = DjangoClient(REMOTE_ADDR="203.0.113.9")
    http.cookies["ajs_anonymous_id"] = "%22anon-7%22"
    reply = http.post(
        "/signup?utm_source=ads",
        headers={"X-User": "42", "User-Agent": "UA/1", "Accept-Language": "it"},
        secure=True,
    )
    assert reply.json() == {"ok": True}
    http.post("/signup", headers={"User-Agent": "UA/2"})  # anonymous: the cookie only
    assert tracker.flush(timeout=10) == 0
    first, second = collector.events(event="Signed Up")
    assert (first["userId"], first["anonymousId"]) == ("42", "anon-7")
    assert first["context"]["ip"] == "203.0.113.9"
    assert first["context"]["userAgent"] == "UA/1"
    assert first["context"]["locale"] == "it"
    assert first["context"]["campaign"] == {"source": "ads"}
    assert first["context"]["page"]["url"] == "https://testserver/signup?utm_source=ads"
    assert (second["userId"], second["anonymousId"]) == (None, "anon-7")


def test_an_async_request_reads_the_user_with_auser(tracker: Client, collector: Collector) -> None:
    async def call() -> Any:
        http = AsyncClient()
        http.cookies["ajs_anonymous_id"] = "a5"
        return await http.post("/asignup", headers={"X-User": "5"})

    reply = asyncio.run(call())
    assert reply.json() == {"ok": True}
    assert tracker.flush(timeout=10) == 0
    [event] = collector.events(event="Signed Up")
    assert (event["userId"], event["anonymousId"]) == ("5", "a5")


def test_settings_name_the_trusted_proxies_and_the_user_id_resolver(
    tracker: Client, collector: Collector
) -> None:
    options = {"TRUSTED_PROXIES": ["10.0.0.0/8"], "USER_ID": f"{__name__}.custom_user_id"}
    with override_settings(SEGMENT_CLONE=options):
        http = DjangoClient(REMOTE_ADDR="10.1.2.3")
        http.post("/signup", headers={"X-User": "3", "X-Forwarded-For": "198.51.100.4"})
    assert tracker.flush(timeout=10) == 0
    [event] = collector.events(event="Signed Up")
    assert event["userId"] == "custom-3"
    assert event["context"]["ip"] == "198.51.100.4"
