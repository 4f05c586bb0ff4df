"""One client, several destinations: each a lane of the engine with its own queue, consumer,
retry budget, stats and reports, against the real collector and scripted loopback servers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import segment_clone as analytics
from segment_clone import Client
from segment_clone.collector import Collector
from segment_clone.destinations import Mixpanel, Segment
from segment_clone.destinations.mixpanel_mapping import insert_id

from ..processes import run_script, start_script
from ..server import Reply, ScriptedServer
from ..stress import harness

IMPORTED = {"code": 200, "status": "OK", "num_records_imported": 1}
QUICK = {"upload_interval": 0.05, "max_retries": 3}

Errors = list[tuple[Any, list[dict[str, Any]]]]


@pytest.fixture
def clients() -> Iterator[list[Client]]:
    made: list[Client] = []
    yield made
    for client in made:
        client.shutdown(timeout=5)


@pytest.fixture
def mixpanel_server() -> Iterator[ScriptedServer]:
    """A stand-in for Mixpanel's API that accepts everything unless a test scripts otherwise."""
    server = ScriptedServer()
    server.default = Reply(body=IMPORTED)
    yield server
    server.close()


def records(server: ScriptedServer) -> list[dict[str, Any]]:
    """Every record the server answered 2xx, from every endpoint."""
    return [
        record
        for r in server.requests
        if r.status is not None and 200 <= r.status < 300
        for record in r.json()
    ]


def beside(
    collector: Collector, mixpanel: ScriptedServer, clients: list[Client], **settings: Any
) -> Client:
    """Segment on the collector, Mixpanel on a scripted server."""
    client = Client(
        destinations=[Segment("wk", host=collector.url), Mixpanel("tok", api_host=mixpanel.url)],
        **settings,
    )
    clients.append(client)
    return client


def both(collector: Collector, clients: list[Client], **settings: Any) -> Client:
    client = Client(
        destinations=[
            Segment("wk", host=collector.url),
            Mixpanel("tok", api_host=collector.url),
        ],
        **settings,
    )
    clients.append(client)
    return client


def test_one_client_delivers_each_call_to_segment_and_to_mixpanel(
    collector: Collector, clients: list[Client]
) -> None:
    client = both(collector, clients, **QUICK)
    for i in range(20):
        client.track(f"user-{i}", "Order Completed", {"revenue": i})
    client.identify("user-1", {"email": "a@example.com"}, anonymous_id="anon-1")
    client.group("user-1", "acme", {"name": "Acme"})
    client.alias("anon-1", "user-1")
    client.page("user-1", name="Home")
    client.screen("user-1", name="Cart")
    assert client.flush(10) == 0

    segment = collector.events(source="segment")
    mixpanel = collector.events(source="mixpanel")
    assert len(segment) == 25
    by_insert_id = {
        r["properties"]["$insert_id"]: r for r in mixpanel if "properties" in r
    }  # events; profiles and groups carry no $insert_id
    tracked = [m for m in segment if m["type"] in ("track", "page", "screen")]
    assert {insert_id(m) for m in tracked} <= set(by_insert_id)
    assert by_insert_id[insert_id(tracked[0])]["event"] == "Order Completed"
    names = {r.get("event") for r in mixpanel}
    assert {"Viewed Home", "Viewed Cart", "$identify", "$create_alias"} <= names
    assert any(r.get("$set", {}).get("$email") == "a@example.com" for r in mixpanel)
    assert any(r.get("$group_id") == "acme" for r in mixpanel)
    stats = client.stats()
    assert stats["destinations"]["segment"]["delivered"] == 25
    assert stats["destinations"]["mixpanel"]["delivered"] == 25


def test_mixpanel_alone_needs_no_write_key(collector: Collector, clients: list[Client]) -> None:
    client = Client(destinations=[Mixpanel("tok", api_host=collector.url)], **QUICK)
    clients.append(client)
    assert client.write_key is None
    assert client.track("user-1", "Signed Up")[0]
    assert client.flush(10) == 0
    assert collector.events(source="segment") == []
    assert [r["event"] for r in collector.events(source="mixpanel")] == ["Signed Up"]
    assert "destinations" not in client.stats()


def test_write_key_with_destinations_adds_that_segment_source(
    collector: Collector, clients: list[Client]
) -> None:
    client = Client(
        "wk", host=collector.url, destinations=[Mixpanel("tok", api_host=collector.url)], **QUICK
    )
    clients.append(client)
    client.track("user-1", "Signed Up")
    assert client.flush(10) == 0
    assert len(collector.events(source="segment")) == 1
    assert len(collector.events(source="mixpanel")) == 1
    assert set(client.stats()["destinations"]) == {"segment", "mixpanel"}


@pytest.mark.parametrize(
    ("kwargs", "error", "complaint"),
    [
        ({}, AssertionError, "write_key must have str"),
        ({"destinations": []}, ValueError, "destinations is empty"),
        ({"destinations": "mixpanel"}, TypeError, "list of destination objects"),
        ({"destinations": [object()]}, TypeError, "Segment or Mixpanel, got: object"),
        (
            {"write_key": "wk", "destinations": [Segment("other")]},
            ValueError,
            "not both",
        ),
        (
            {"host": "http://127.0.0.1:1", "destinations": [Mixpanel("tok")]},
            ValueError,
            "host is write_key's",
        ),
    ],
    ids=["nothing", "empty", "a-string", "not-a-destination", "two-segments", "stray-host"],
)
def test_a_bad_set_of_destinations_is_refused_at_construction(
    kwargs: dict[str, Any], error: type[Exception], complaint: str
) -> None:
    with pytest.raises(error, match=complaint):
        Client(**kwargs)


def test_the_write_key_never_shows_in_a_destinations_repr() -> None:
    assert "secret-key" not in repr(Segment("secret-key", host="http://127.0.0.1:1"))
    assert "s3cret" not in repr(Mixpanel("tok", api_secret="s3cret"))


def test_a_mixpanel_outage_neither_delays_nor_loses_segment_events(
    collector: Collector, mixpanel_server: ScriptedServer, clients: list[Client]
) -> None:
    mixpanel_server.go_down()
    errors: Errors = []
    client = beside(
        collector,
        mixpanel_server,
        clients,
        on_error=lambda e, batch: errors.append((e, batch)),
        upload_interval=0.05,
        max_retries=100,
    )
    for i in range(30):
        client.track(f"user-{i}", "During Outage")
    collector.wait_for(30, source="segment")  # Segment's lane is not held up
    assert client.stats()["destinations"]["mixpanel"]["pending"] == 30
    mixpanel_server.come_back()
    assert client.flush(20) == 0
    assert sorted(r["properties"]["distinct_id"] for r in records(mixpanel_server)) == sorted(
        f"user-{i}" for i in range(30)
    )
    assert errors == []


def test_503s_on_one_destination_are_retried_with_its_own_budget(
    collector: Collector, mixpanel_server: ScriptedServer, clients: list[Client]
) -> None:
    mixpanel_server.script(*[Reply(status=503, body="busy")] * 3)
    client = beside(
        collector,
        mixpanel_server,
        clients,
        **QUICK,
    )
    client.track("user-1", "Retried")
    assert client.flush(20) == 0
    assert [r["event"] for r in records(mixpanel_server)] == ["Retried"]
    assert [r.header("X-Retry-Count") for r in mixpanel_server.requests] == [None, "1", "2", "3"]
    stats = client.stats()["destinations"]
    assert stats["mixpanel"]["retried"] == 3 and stats["segment"]["retried"] == 0


def test_a_destination_that_stays_down_is_reported_by_name(
    collector: Collector, mixpanel_server: ScriptedServer, clients: list[Client]
) -> None:
    mixpanel_server.default = Reply(status=500, body="down")
    errors: Errors = []
    client = beside(
        collector,
        mixpanel_server,
        clients,
        on_error=lambda e, batch: errors.append((e, batch)),
        upload_interval=0.05,
        max_retries=1,
    )
    client.track("user-1", "Lost On One Side")
    assert client.flush(20) == 0
    assert len(collector.events(source="segment")) == 1
    [(error, batch)] = errors
    assert error.destination == "mixpanel"
    assert [m["event"] for m in batch] == ["Lost On One Side"]
    assert client.stats()["destinations"]["mixpanel"]["dropped"] == {"retries_exhausted": 1}


def test_records_refused_under_strict_go_to_on_error_with_mixpanels_reason(
    mixpanel_server: ScriptedServer, clients: list[Client]
) -> None:
    errors: Errors = []
    client = Client(
        destinations=[Mixpanel("tok", api_host=mixpanel_server.url)],
        on_error=lambda e, batch: errors.append((e, batch)),
        upload_interval=60,
    )
    clients.append(client)
    client.track("user-1", "Kept")
    client.track("user-2", "Refused")
    client.track("user-3", "Also Refused")
    mixpanel_server.script(
        Reply(
            status=400,
            body={
                "code": 400,
                "num_records_imported": 1,
                "failed_records": [
                    {"index": 1, "$insert_id": "x", "field": "properties.time", "message": "bad"},
                    {"index": 2, "$insert_id": "y", "field": "event", "message": "too long"},
                ],
            },
        )
    )
    assert client.flush(10) == 0
    [request] = mixpanel_server.requests
    assert request.path == "/import?strict=1"
    assert request.header("Content-Encoding") == "gzip"
    [(first, [one]), (second, [other])] = errors  # one by one, each with Mixpanel's reason
    assert "properties.time: bad" in str(first) and first.destination == "mixpanel"
    assert "event: too long" in str(second)
    assert (one["event"], other["event"]) == ("Refused", "Also Refused")
    stats = client.stats()
    assert stats["delivered"] == 1 and stats["dropped"] == {"rejected": 2}


def test_a_message_mixpanel_would_refuse_is_reported_at_call_time_and_never_sent(
    collector: Collector, clients: list[Client]
) -> None:
    errors: Errors = []
    client = both(collector, clients, on_error=lambda e, b: errors.append((e, b)), **QUICK)
    old = datetime(1960, 1, 1, tzinfo=timezone.utc)
    assert client.track("user-1", "From 1960", timestamp=old)[0]  # Segment took it
    crowded = {f"p{i}": i for i in range(300)}
    assert client.track("user-1", "Crowded", crowded)[0]
    [(first, _), (second, _)] = errors  # reported before any flush
    assert "before 1971" in str(first) and first.destination == "mixpanel"
    assert "properties" in str(second)
    assert client.flush(10) == 0
    assert len(collector.events(source="segment")) == 2
    assert collector.events(source="mixpanel") == []
    assert client.stats()["destinations"]["mixpanel"]["dropped"] == {"refused": 2}

    alone = Client(destinations=[Mixpanel("tok", api_host=collector.url)], send=True)
    clients.append(alone)
    assert alone.track("user-1", "From 1960", timestamp=old)[0] is False


def test_before_send_and_scope_apply_to_every_destination(
    collector: Collector, clients: list[Client]
) -> None:
    def scrub(message: dict[str, Any]) -> dict[str, Any]:
        message["properties"].pop("email", None)
        return message

    client = both(collector, clients, before_send=scrub, **QUICK)
    with client.scope(context={"ip": "203.0.113.9"}):
        client.track("user-1", "Scoped", {"email": "a@example.com", "plan": "pro"})
    assert client.flush(10) == 0
    [segment] = collector.events(source="segment")
    [mixpanel] = collector.events(source="mixpanel")
    assert "email" not in segment["properties"] and "email" not in mixpanel["properties"]
    assert segment["context"]["ip"] == mixpanel["properties"]["ip"] == "203.0.113.9"


def test_join_shutdown_and_their_async_twins_cover_every_lane(
    mixpanel_server: ScriptedServer, server: ScriptedServer, clients: list[Client]
) -> None:
    client = Client(
        destinations=[
            Segment("wk", host=server.url),
            Mixpanel("tok", api_host=mixpanel_server.url),
        ],
        upload_interval=60,
        upload_size=1000,
    )
    clients.append(client)
    client.track("user-1", "One")
    assert client.shutdown(10) == 0
    assert len(server.messages()) == 1 and len(records(mixpanel_server)) == 1
    lanes = [client, *client._lanes]
    assert all(not c.is_alive() for lane in lanes for c in lane.consumers or [])

    async def main() -> int:
        client.track("user-1", "Two")
        return await client.ashutdown(10)

    assert asyncio.run(main()) == 0
    assert len(server.messages()) == 2 and len(records(mixpanel_server)) == 2


def test_sync_mode_sends_to_each_destination_before_returning(
    collector: Collector, clients: list[Client]
) -> None:
    client = both(collector, clients, sync_mode=True)
    assert client.track("user-1", "Synchronous")[0]
    assert len(collector.events(source="segment")) == 1
    assert len(collector.events(source="mixpanel")) == 1


def test_the_module_global_takes_destinations(collector: Collector, fresh_module: None) -> None:
    analytics.destinations = [  # type: ignore[attr-defined]
        Segment("wk", host=collector.url),
        Mixpanel("tok", api_host=collector.url),
    ]
    analytics.track("user-1", "Through The Module")
    analytics.flush()
    assert len(collector.events(source="segment")) == 1
    assert len(collector.events(source="mixpanel")) == 1


# -- process lifecycle: exit, fork and the spool, in real subprocesses ---------------------------

PROGRAM = """
import os, signal, sys
from segment_clone import Client
from segment_clone.destinations import Mixpanel, Segment
segment, mixpanel, spool, mode = sys.argv[1:5]
client = Client(
    destinations=[Segment("wk", host=segment), Mixpanel("tok", api_host=mixpanel)],
    upload_interval=60, upload_size=1000, max_retries=1000,
    spool_path=None if spool == "-" else spool,
)
if mode == "fork":
    pid = os.fork()
    if pid == 0:
        client.track("child", "From The Child")
        client.flush(10)
        os._exit(0)
    os.waitpid(pid, 0)
for i in range(10):
    client.track(f"user-{i}", "Tracked")
if mode == "kill":
    print("tracked", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_the_exit_hook_delivers_every_lane(
    collector: Collector, mixpanel_server: ScriptedServer
) -> None:
    result = run_script(PROGRAM, collector.url, mixpanel_server.url, "-", "exit")
    assert result.returncode == 0, result.stderr
    assert len(collector.events(source="segment")) == 10
    assert len(records(mixpanel_server)) == 10


def test_a_forked_child_delivers_its_own_messages_to_every_lane(
    collector: Collector, mixpanel_server: ScriptedServer
) -> None:
    result = run_script(PROGRAM, collector.url, mixpanel_server.url, "-", "fork")
    assert result.returncode == 0, result.stderr
    assert sorted(m["userId"] for m in collector.events(source="segment")).count("child") == 1
    ids = [r["properties"]["distinct_id"] for r in records(mixpanel_server)]
    assert ids.count("child") == 1 and len(ids) == 11


def test_the_spool_keeps_each_lanes_messages_through_kill_9(
    collector: Collector, mixpanel_server: ScriptedServer, tmp_path: Path
) -> None:
    mixpanel_server.go_down()
    spool = tmp_path / "spool"
    proc = start_script(PROGRAM, collector.url, mixpanel_server.url, str(spool), "kill")
    assert proc.stdout is not None and proc.stdout.readline() == "tracked\n"
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert (spool / ".mixpanel").is_dir()
    mixpanel_server.come_back()

    replay = Client(
        destinations=[
            Segment("wk", host=collector.url),
            Mixpanel("tok", api_host=mixpanel_server.url),
        ],
        spool_path=spool,
        upload_interval=0.05,
    )
    try:
        assert replay.flush(20) == 0
    finally:
        replay.shutdown(5)
    assert len(collector.events(source="segment")) == 10
    assert len(records(mixpanel_server)) == 10


def test_each_lane_runs_its_own_consumer_thread(
    collector: Collector, clients: list[Client]
) -> None:
    client = both(collector, clients, **QUICK)
    client.track("user-1", "Started")

    def names(c: Client) -> list[str]:
        return [t.name for t in c.consumers or []]

    assert names(client) == ["segment-clone-consumer"]
    assert names(client._lanes[0]) == ["segment-clone-mixpanel"]
    assert os.getpid() == client._lanes[0]._runtime().pid


def test_exit_while_threads_track_loses_nothing_on_either_lane(
    server: ScriptedServer, mixpanel_server: ScriptedServer
) -> None:
    """Issue 25's exit scenario under a 1 µs switch interval, with two destinations: what a
    call accepted is stored by each destination, or reported for it."""
    result = run_script(
        harness.PREAMBLE.replace(
            'reported.extend(m["messageId"] for m in batch)',
            'reported.extend([exc.destination, m["messageId"]] for m in batch)',
        )
        + """
from segment_clone.destinations import Mixpanel, Segment
client = segment_clone.Client(
    destinations=[Segment("wk", host=sys.argv[1]), Mixpanel("tok", api_host=sys.argv[2])],
    upload_interval=0.01, shutdown_timeout=0.3, on_error=on_error,
)
"""
        + harness.TRACK_THROUGH_EXIT,
        server.url,
        mixpanel_server.url,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [line] = [x for x in result.stdout.splitlines() if x.startswith('{"pid"')]
    process = json.loads(line)
    accepted = set(process["accepted"])
    assert len(accepted) >= 300
    reported = {label: {i for d, i in process["reported"] if d == label} for label in LABELS}
    stored = {
        "segment": {m["messageId"] for m in server.messages()},
        "mixpanel": {r["properties"]["$insert_id"] for r in records(mixpanel_server)},
    }
    for label in LABELS:
        lost = accepted - stored[label] - reported[label]
        assert not lost, f"{label}: {len(lost)} of {len(accepted)} accepted messages lost"


LABELS = ("segment", "mixpanel")
