"""The ASGI middleware in a real Starlette app: a scope per request, and the flush at
``lifespan.shutdown`` that keeps what uvicorn would otherwise lose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from segment_clone import Client
from segment_clone.collector import Collector
from segment_clone.integrations.asgi import SegmentMiddleware


def make_app(patient_client: Client, **options: Any) -> SegmentMiddleware:
    async def signup(request: Request) -> JSONResponse:
        ok, msg = patient_client.track(event="Signed Up", properties={"plan": "pro"})
        return JSONResponse({"ok": ok, "messageId": msg["messageId"]})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        patient_client.track(anonymous_id="server", event="Server Stopped")  # after the first flush

    app = Starlette(routes=[Route("/signup", signup, methods=["POST"])], lifespan=lifespan)
    options.setdefault("user_id", lambda scope: "u1")
    return SegmentMiddleware(app, client=patient_client, **options)


def test_each_request_fills_the_context_and_identity(
    patient_client: Client, collector: Collector
) -> None:
    app = make_app(patient_client, user_id=lambda scope: "user-7")
    with TestClient(app, base_url="https://shop.example", client=("203.0.113.5", 4000)) as http:
        reply = http.post(
            "/signup?utm_source=news&utm_campaign=spring&x=1",
            headers={
                "User-Agent": "Mozilla/5.0 test",
                "Referer": "https://shop.example/pricing",
                "Accept-Language": "fr-CH, fr;q=0.9",
                "Cookie": "ajs_anonymous_id=%22anon-42%22; session=secret",
            },
        )
        assert reply.status_code == 200 and reply.json()["ok"]
    [event] = collector.wait_for(1, event="Signed Up")
    assert (event["userId"], event["anonymousId"]) == ("user-7", "anon-42")
    context = event["context"]
    assert context["ip"] == "203.0.113.5"
    assert context["userAgent"] == "Mozilla/5.0 test"
    assert context["locale"] == "fr-CH"
    assert context["campaign"] == {"source": "news", "name": "spring"}
    assert context["page"] == {
        "path": "/signup",
        "referrer": "https://shop.example/pricing",
        "search": "?utm_source=news&utm_campaign=spring&x=1",
        "url": "https://shop.example/signup?utm_source=news&utm_campaign=spring&x=1",
    }


def test_forwarded_for_counts_only_behind_a_trusted_proxy(
    patient_client: Client, collector: Collector
) -> None:
    headers = {"X-Forwarded-For": "198.51.100.9"}
    with TestClient(make_app(patient_client), client=("10.0.0.2", 50000)) as http:
        http.post("/signup", headers={**headers, "Cookie": "ajs_anonymous_id=a"})
    with TestClient(
        make_app(patient_client, trusted_proxies=["10.0.0.0/8"]), client=("10.0.0.2", 50000)
    ) as http:
        http.post("/signup", headers={**headers, "Cookie": "ajs_anonymous_id=b"})
    events = {e["anonymousId"]: e for e in collector.wait_for(2, event="Signed Up")}
    assert events["a"]["context"]["ip"] == "10.0.0.2"
    assert events["b"]["context"]["ip"] == "198.51.100.9"


def test_hostile_headers_never_fail_the_request(
    patient_client: Client, collector: Collector
) -> None:
    app = make_app(patient_client)
    raw_headers = [
        (b"user-agent", b"\xff\xfe" * 20_000),
        (b"cookie", b"ajs_anonymous_id=%ff%fe; ajs_anonymous_id=\x00; ;=;"),
        (b"x-forwarded-for", b"::::, 999.1.1.1, \xff"),
        (b"accept-language", b";q=;;,,,*;q=2"),
        (b"referer", b"\x00" * 50_000),
        (b"host", b"\xff bad host"),
    ]

    async def call() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/signup", "raw_path": b"/signup",
            "query_string": b"utm_source=%ff%fe&utm_campaign=" + b"x" * 10_000,
            "root_path": "", "headers": raw_headers, "patient_client": None, "server": None,
        }  # fmt: skip
        await app(scope, receive, send)
        return sent

    sent = asyncio.run(call())
    assert sent[0]["status"] == 200
    assert patient_client.flush(timeout=10) == 0
    [event] = collector.events(event="Signed Up")
    assert event["anonymousId"] is None and "ip" not in event["context"]
    assert len(event["context"]["userAgent"]) == 1024
    page = event["context"]["page"]
    assert page["url"].startswith("http://localhost/signup?utm_source=%ff%fe&utm_campaign=xxx")
    assert len(page["search"]) == 2049 and len(event["context"]["campaign"]["name"]) == 256


def test_lifespan_shutdown_flushes_what_is_queued_and_what_shutdown_sent(
    patient_client: Client, collector: Collector
) -> None:
    with TestClient(make_app(patient_client)) as http:
        for _ in range(5):
            assert http.post("/signup").json()["ok"]
        assert collector.events() == []  # PATIENT: all still queued
    # TestClient has sent lifespan.shutdown and received shutdown.complete: all delivered.
    assert len(collector.events(event="Signed Up")) == 5
    assert len(collector.events(event="Server Stopped")) == 1


@pytest.mark.parametrize("refusal", ["raises", "returns"])
def test_an_app_without_lifespan_support_still_gets_the_flush(
    refusal: str, patient_client: Client, collector: Collector
) -> None:
    async def bare(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":  # as many small ASGI apps do, one way or the other
            if refusal == "raises":
                raise RuntimeError("only http")
            return
        patient_client.track(anonymous_id="a", event="Bare")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    with TestClient(SegmentMiddleware(bare, client=patient_client)) as http:
        assert http.get("/").status_code == 204
        assert collector.events() == []
    assert len(collector.events(event="Bare")) == 1


def test_a_failing_startup_is_reported_not_hidden(patient_client: Client) -> None:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    app = SegmentMiddleware(Starlette(lifespan=lifespan), client=patient_client)
    with pytest.raises(RuntimeError, match="no database"), TestClient(app):
        pass


def test_fastapi_add_middleware_takes_part_in_the_lifespan(
    patient_client: Client, collector: Collector
) -> None:
    from fastapi import FastAPI

    app = FastAPI()
    app.add_middleware(SegmentMiddleware, client=patient_client, user_id=lambda scope: "u1")

    @app.post("/order")
    async def order() -> dict[str, bool]:
        return {"ok": patient_client.track(event="Ordered")[0]}

    @app.post("/refund")
    def refund() -> dict[str, bool]:  # a sync endpoint: FastAPI runs it in a worker thread
        return {"ok": patient_client.track(event="Refunded")[0]}

    with TestClient(app) as http:
        assert http.post("/order").json() == {"ok": True}
        assert http.post("/refund").json() == {"ok": True}
        assert collector.events() == []
    events = collector.events()
    assert sorted((e["event"], e["userId"]) for e in events) == [
        ("Ordered", "u1"),
        ("Refunded", "u1"),
    ]
