"""Local evaluation through ``Mixpanel(local_flags_config=...)`` against a real loopback server:
definitions fetched over HTTP, variants assigned, exposures sent through the instance's consumer,
and an endpoint that is down, slow or answers garbage never reaching the caller."""

from __future__ import annotations

import logging
from typing import Any, Callable

import pytest

from segment_clone.mixpanel import Mixpanel, MixpanelException
from segment_clone.mixpanel.flags.types import SelectedVariant, VariantSource

from ..mixpanel.conftest import Log
from ..processes import run_script
from ..server import Reply, ScriptedServer
from .conftest import TOKEN, definitions, flag

MakeMp = Callable[..., tuple[Mixpanel, Log]]
USER = {"distinct_id": "user-1"}


def test_definitions_are_fetched_with_the_token_and_evaluated(
    server: ScriptedServer, make_mp: MakeMp
) -> None:
    server.default = Reply(body=definitions(flag()))
    mp, _ = make_mp()
    mp.local_flags.start_polling_for_definitions()
    assert mp.local_flags.are_flags_ready()
    assert mp.local_flags.is_enabled("new_checkout", USER) is True
    (request,) = server.requests
    assert request.method == "GET"
    assert request.path.startswith("/flags/definitions?")
    assert f"token={TOKEN}" in request.path
    assert request.header("authorization") == "Basic ZmxhZ3MtdG9rZW46"  # the token, no password
    assert request.header("traceparent")


def test_exposure_goes_through_the_consumer_and_before_send(
    server: ScriptedServer, make_mp: MakeMp
) -> None:
    seen: list[dict[str, Any]] = []

    def hook(message: dict[str, Any]) -> dict[str, Any]:
        seen.append(message)
        message["properties"]["hooked"] = True
        return message

    server.default = Reply(body=definitions(flag()))
    mp, log = make_mp(before_send=hook)
    mp.local_flags.start_polling_for_definitions()
    variant = mp.local_flags.get_variant("new_checkout", SelectedVariant(None), USER)
    assert (variant.variant_key, variant.variant_source) == ("on", VariantSource.LOCAL)
    ((endpoint, event, _),) = log.calls
    assert endpoint == "events"
    assert event["event"] == "$experiment_started"
    props = event["properties"]
    assert props["token"] == TOKEN
    assert props["distinct_id"] == "user-1"
    assert props["Experiment name"] == "new_checkout"
    assert props["Variant name"] == "on"
    assert props["Flag evaluation mode"] == "local"
    assert props["$experiment_id"] == "exp-new_checkout"
    assert props["hooked"] is True
    assert len(seen) == 1


def test_get_all_variants_sends_no_exposure(server: ScriptedServer, make_mp: MakeMp) -> None:
    server.default = Reply(body=definitions(flag("a"), flag("b", rollout=[])))
    mp, log = make_mp()
    mp.local_flags.start_polling_for_definitions()
    assert set(mp.local_flags.get_all_variants(USER)) == {"a"}
    assert log.calls == []


@pytest.mark.parametrize(
    "reply",
    [
        Reply(status=500, body="boom"),
        Reply(body="not json at all"),
        Reply(body={"flags": [{"key": "half a definition"}]}),
        Reply(body=[1, 2, 3]),
        Reply(reset=True),
    ],
    ids=["5xx", "not-json", "bad-shape", "wrong-type", "reset"],
)
def test_a_bad_answer_gives_the_fallback_and_keeps_loaded_definitions(
    server: ScriptedServer, make_mp: MakeMp, reply: Reply
) -> None:
    server.script(Reply(body=definitions(flag())), reply)
    mp, _ = make_mp()
    flags = mp.local_flags
    flags.start_polling_for_definitions()
    flags._fetch_flag_definitions()  # the refresh a poll would make: answered badly
    assert flags.get_variant_value("new_checkout", "fallback", USER) is True
    assert flags.get_variant_value("unknown", "fallback", USER) == "fallback"


def test_an_unreachable_or_slow_endpoint_gives_the_fallback(
    server: ScriptedServer, make_mp: MakeMp
) -> None:
    server.default = Reply(body=definitions(flag()), delay=1.0)
    mp, _ = make_mp(config={"request_timeout_in_seconds": 0.1})
    mp.local_flags.start_polling_for_definitions()  # times out
    assert not mp.local_flags.are_flags_ready()
    assert mp.local_flags.get_variant_value("new_checkout", "fallback", USER) == "fallback"
    server.go_down()
    mp.local_flags.start_polling_for_definitions()  # connection refused
    assert mp.local_flags.get_variant_value("new_checkout", "fallback", USER) == "fallback"


def test_failures_are_logged_once_per_streak_without_the_token(
    server: ScriptedServer, make_mp: MakeMp, caplog: pytest.LogCaptureFixture
) -> None:
    ok = Reply(body=definitions(flag()))
    bad = Reply(status=503, body="")
    server.script(bad, bad, bad, ok, bad)
    mp, _ = make_mp()
    with caplog.at_level(logging.DEBUG, logger="segment_clone.mixpanel.flags"):
        for _ in range(5):
            mp.local_flags._fetch_flag_definitions()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "Failed to fetch feature flag definitions: HTTP 503",
        "Failed to fetch feature flag definitions: HTTP 503",
    ]
    assert any("succeeded again" in r.getMessage() for r in caplog.records)
    assert not any(TOKEN in r.getMessage() for r in caplog.records)


def test_service_account_credentials_authenticate_the_request(
    server: ScriptedServer, make_mp: MakeMp
) -> None:
    from segment_clone.mixpanel import ServiceAccountCredentials

    server.default = Reply(body=definitions())
    mp, _ = make_mp(credentials=ServiceAccountCredentials("sa", "secret", "42"))
    mp.local_flags.start_polling_for_definitions()
    (request,) = server.requests
    assert request.header("authorization") == "Basic c2E6c2VjcmV0"
    assert "project_id=42" in request.path


def test_a_consumer_that_fails_does_not_fail_the_evaluation(
    server: ScriptedServer, make_mp: MakeMp, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken:
        def send(self, endpoint: str, message: str) -> None:
            raise MixpanelException("the events endpoint is down")

    server.default = Reply(body=definitions(flag()))
    mp, _ = make_mp()
    mp._consumer = Broken()
    mp.local_flags.start_polling_for_definitions()
    with caplog.at_level(logging.ERROR):
        assert mp.local_flags.is_enabled("new_checkout", USER) is True
    assert "Exposure event failed: MixpanelException: the events endpoint is down" in caplog.text


def test_leaving_the_block_after_async_polling_in_an_ended_loop(server: ScriptedServer) -> None:
    """``asyncio.run`` polls and ends, leaving a connection its loop no longer can close; the
    application then leaves its ``with mp:`` block, which must not raise. (In a subprocess: the
    dead loop's socket is reported unclosed when collected.)"""
    server.default = Reply(body=definitions(flag()))
    result = run_script(
        """
        import asyncio, sys
        from segment_clone.mixpanel import LocalFlagsConfig, Mixpanel

        class Sink:
            def send(self, endpoint, message):
                pass

        config = LocalFlagsConfig(api_host=sys.argv[1], enable_polling=False)
        with Mixpanel("tok", consumer=Sink(), local_flags_config=config) as mp:
            asyncio.run(mp.local_flags.astart_polling_for_definitions())
        assert mp.local_flags._async_client.is_closed
        print("left the block")
        """,
        server.url,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "left the block"
