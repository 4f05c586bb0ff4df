"""Remote evaluation through ``Mixpanel(remote_flags_config=...)`` against a real loopback
server: the context goes in the query, the variant comes back, the exposure goes through the
instance's consumer, and a failing server gives the fallback with the backend's reason."""

from __future__ import annotations

import asyncio
import json
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from segment_clone.mixpanel import Mixpanel
from segment_clone.mixpanel.flags.types import SelectedVariant, VariantSource

from ..mixpanel.conftest import Log
from ..server import Reply, ScriptedServer
from .conftest import TOKEN

MakeMp = Callable[..., tuple[Mixpanel, Log]]
USER = {"distinct_id": "user-1", "custom_properties": {"plan": "pro"}}
ANSWER = {"code": 200, "flags": {"new_checkout": {"variant_key": "on", "variant_value": True}}}


def test_variant_from_the_server_and_its_exposure(server: ScriptedServer, make_mp: MakeMp) -> None:
    server.default = Reply(body=ANSWER)
    mp, log = make_mp(local=False, remote=True)
    assert mp.remote_flags.is_enabled("new_checkout", USER) is True
    (request,) = server.requests
    query = parse_qs(urlsplit(request.path).query)
    assert json.loads(query["context"][0]) == USER
    assert query["flag_key"] == ["new_checkout"]
    assert query["token"] == [TOKEN]
    ((endpoint, event, _),) = log.calls
    assert (endpoint, event["event"]) == ("events", "$experiment_started")
    assert event["properties"]["Flag evaluation mode"] == "remote"
    assert event["properties"]["Variant name"] == "on"


def test_a_failing_server_gives_the_fallback_with_its_reason(
    server: ScriptedServer, make_mp: MakeMp
) -> None:
    server.default = Reply(status=400, body="distinct_id must be a string")
    mp, log = make_mp(local=False, remote=True)
    result = mp.remote_flags.get_variant("new_checkout", SelectedVariant("fb"), USER)
    assert (result.variant_value, result.variant_source) == ("fb", VariantSource.FALLBACK)
    assert result.fallback_reason is not None
    assert result.fallback_reason.message == "HTTP 400: distinct_id must be a string"
    assert mp.remote_flags.get_all_variants(USER) is None
    server.go_down()
    assert mp.remote_flags.get_variant_value("new_checkout", "fb", USER) == "fb"
    assert log.calls == []


def test_async_variant_and_exposure(server: ScriptedServer, make_mp: MakeMp) -> None:
    server.default = Reply(body=ANSWER)
    mp, log = make_mp(local=False, remote=True)

    async def main() -> object:
        value = await mp.remote_flags.aget_variant_value("new_checkout", False, USER)
        await asyncio.gather(*mp.remote_flags._exposures)
        await mp.__aexit__(None, None, None)
        return value

    assert asyncio.run(main()) is True
    assert [event["event"] for _, event, _ in log.calls] == ["$experiment_started"]
