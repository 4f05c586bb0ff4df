"""The WSGI middleware in a real Flask app: a scope per request, kept while a response streams."""

from __future__ import annotations

from collections.abc import Iterator

from flask import Flask, Response

from segment_clone import Client
from segment_clone.collector import Collector
from segment_clone.integrations.wsgi import SegmentMiddleware


def make_app(client: Client, **options: object) -> Flask:
    app = Flask(__name__)

    @app.post("/signup")
    def signup() -> dict[str, object]:
        ok, _ = client.track(event="Signed Up")
        return {"ok": ok}

    @app.get("/export")
    def export() -> Response:
        def rows() -> Iterator[str]:
            for i in range(3):
                client.track(event="Row Streamed", properties={"i": i})  # after the view returned
                yield f"{i}\n"

        return Response(rows())

    options.setdefault("user_id", lambda environ: environ.get("HTTP_X_USER"))
    app.wsgi_app = SegmentMiddleware(app.wsgi_app, **options)  # type: ignore[method-assign]
    return app


def test_each_request_fills_the_context_and_identity(
    patient_client: Client, collector: Collector
) -> None:
    http = make_app(patient_client).test_client()
    http.set_cookie("ajs_anonymous_id", "%22anon-1%22", domain="shop.example")
    reply = http.post(
        "/signup?utm_medium=email",
        base_url="https://shop.example",
        headers={
            "X-User": "u-9",
            "User-Agent": "Mozilla/5.0 caf\u00e9".encode().decode("latin-1"),
            "Accept-Language": "de-DE",
        },
        environ_base={"REMOTE_ADDR": "203.0.113.8"},
    )
    assert reply.json == {"ok": True}
    assert patient_client.flush(timeout=10) == 0
    [event] = collector.events(event="Signed Up")
    assert (event["userId"], event["anonymousId"]) == ("u-9", "anon-1")
    context = event["context"]
    assert context["ip"] == "203.0.113.8"
    assert context["userAgent"] == "Mozilla/5.0 caf\u00e9"  # WSGI's latin-1 read back as UTF-8
    assert context["locale"] == "de-DE"
    assert context["campaign"] == {"medium": "email"}
    assert context["page"]["url"] == "https://shop.example/signup?utm_medium=email"


def test_a_streamed_response_keeps_the_scope_and_requests_do_not_share_it(
    patient_client: Client, collector: Collector
) -> None:
    http = make_app(patient_client).test_client()
    for user in ("u-1", "u-2"):
        reply = http.get("/export", headers={"X-User": user})
        assert reply.data == b"0\n1\n2\n"
    assert patient_client.flush(timeout=10) == 0
    users = [e["userId"] for e in collector.events(event="Row Streamed")]
    assert users == ["u-1"] * 3 + ["u-2"] * 3


def test_hostile_headers_never_fail_the_request(
    patient_client: Client, collector: Collector
) -> None:
    http = make_app(patient_client, trusted_proxies=["127.0.0.1"]).test_client()
    http.set_cookie("ajs_anonymous_id", "%ff")
    reply = http.post(
        "/signup",
        headers={
            "X-User": "u-1",
            "X-Forwarded-For": "\u00ff\u00fe, ::::",
            "Accept-Language": "q=;,,",
            "User-Agent": "\u00ff" * 100_000,
        },
    )
    assert reply.status_code == 200
    assert patient_client.flush(timeout=10) == 0
    [event] = collector.events(event="Signed Up")
    assert event["anonymousId"] is None
    assert event["context"]["ip"] == "127.0.0.1"
    assert len(event["context"]["userAgent"]) == 1024
