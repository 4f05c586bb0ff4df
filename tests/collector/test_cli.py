"""The ``segment-clone`` command: collector (as a real process), events and send."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from segment_clone import cli
from segment_clone.collector import Collector, command
from segment_clone.collector.plan import parse_plan

from ..api import call, get, post, track
from ..processes import MODULE, SCRIPT, collector_process
from .plans import COMPACT, GOOD_ORDER, mixpanel_event, segment_track, write_plan

# -- segment-clone collector ------------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_collector_prints_one_line_serves_and_stops_cleanly(tmp_path: Path, signum: int) -> None:
    db = tmp_path / "events.db"
    with collector_process("--db", str(db)) as running:
        assert post(running.url, "/v1/batch", {"batch": [track(message_id="c1")]}).status == 200
        status, out, err = running.stop(signum)
    assert (status, out, err) == (0, "", "")
    with Collector(db, port=0) as reopened:
        assert [m["messageId"] for m in reopened.events()] == ["c1"]


def test_python_dash_m_takes_the_same_options(tmp_path: Path) -> None:
    args = (
        "--db",
        str(tmp_path / "e.db"),
        "--write-key",
        "k1",
        "--fail-rate",
        "1",
        "--fail-status",
        "500",
        "--retry-after",
        "2.5",
        "--delay-ms",
        "1",
    )
    with collector_process(*args, command=MODULE) as running:
        refused = post(running.url, "/v1/batch", {"batch": [track()], "writeKey": "k1"})
        assert (refused.status, refused.headers["retry-after"]) == (500, "2.5")
        assert get(running.url, "/api/faults")["delay_ms"] == 1.0
        assert post(running.url, "/api/faults", {"fail_rate": 0}).status == 200
        wrong = post(running.url, "/v1/batch", {"batch": [track()], "writeKey": "other"})
        assert wrong.status == 401
        assert post(running.url, "/v1/batch", {"batch": [track()], "writeKey": "k1"}).status == 200
        assert running.stop()[0] == 0


def test_the_default_database_is_in_the_current_folder(tmp_path: Path) -> None:
    with collector_process(cwd=tmp_path) as running:
        assert post(running.url, "/v1/track", track()).status == 200
        assert running.stop()[0] == 0
    assert (tmp_path / "segment-clone-events.db").is_file()


def test_bad_options_and_a_busy_port_fail_with_a_message(tmp_path: Path) -> None:
    bad = subprocess.run(
        [SCRIPT, "collector", "--fail-rate", "2", "--db", str(tmp_path / "x.db")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2
    assert "fail_rate" in bad.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        taken = subprocess.run(
            [SCRIPT, "collector", "--port", port, "--db", str(tmp_path / "x.db")],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert taken.returncode == 1
    assert "cannot listen" in taken.stderr


# -- segment-clone events ---------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_events_prints_what_the_file_holds(
    collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = [
        track("u1", "A", "1"),
        {"type": "page", "userId": "u1", "messageId": "2"},
        track("u2", "B", "3"),
    ]
    assert post(collector.url, "/v1/batch", {"batch": batch}).status == 200
    db = str(collector.db_path)
    status, out, _ = run_cli(capsys, "events", "--db", db)
    assert status == 0
    assert [json.loads(line) for line in out.splitlines()] == batch
    _, out, _ = run_cli(capsys, "events", "--db", db, "--type", "track", "--limit", "1")
    assert [json.loads(line)["messageId"] for line in out.splitlines()] == ["3"]
    assert run_cli(capsys, "events", "--db", db, "--type", "track", "--count")[1] == "2\n"
    _, out, _ = run_cli(capsys, "events", "--db", db, "--stats")
    assert json.loads(out)["sources"]["segment"]["types"] == {"page": 1, "track": 2}


def test_events_without_a_database_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(capsys, "events", "--db", str(tmp_path / "missing.db"))
    assert status == 1
    assert "no database" in err
    assert not (tmp_path / "missing.db").exists()


# -- segment-clone send -----------------------------------------------------------------------

SEND_CASES: dict[str, tuple[list[str], dict[str, Any]]] = {
    "track": (
        ["--user-id", "u1", "--event", "Bought", "--properties", '{"a": 1}'],
        {"userId": "u1", "event": "Bought", "properties": {"a": 1}},
    ),
    "identify": (["--user-id", "u1", "--traits", '{"plan": "pro"}'], {"traits": {"plan": "pro"}}),
    "page": (
        ["--anonymous-id", "a1", "--name", "Home", "--category", "Docs"],
        {"anonymousId": "a1", "name": "Home", "category": "Docs"},
    ),
    "screen": (["--user-id", "u1", "--name", "Welcome"], {"name": "Welcome"}),
    "group": (["--user-id", "u1", "--group-id", "acme"], {"groupId": "acme"}),
    "alias": (["--previous-id", "anon-1", "--user-id", "u1"], {"previousId": "anon-1"}),
}


@pytest.mark.parametrize("type_", SEND_CASES)
def test_send_delivers_each_message_type(
    collector: Collector, capsys: pytest.CaptureFixture[str], type_: str
) -> None:
    args, expected = SEND_CASES[type_]
    status, _, err = run_cli(
        capsys,
        "send",
        "--write-key",
        "k",
        "--host",
        collector.url,
        type_,
        *args,
        "--message-id",
        "cli-1",
        "--timestamp",
        "2024-05-06T07:08:09Z",
    )
    assert status == 0, err
    assert "delivered 1 message(s)" in err
    [stored] = collector.events()
    assert stored["type"] == type_
    assert stored["messageId"] == "cli-1"
    assert stored["timestamp"] == "2024-05-06T07:08:09.000+00:00"
    assert stored.items() >= expected.items()


def write_lines(path: Path, messages: list[Any]) -> Path:
    path.write_text("".join((m if isinstance(m, str) else json.dumps(m)) + "\n" for m in messages))
    return path


def test_send_file_delivers_every_line_with_a_progress_bar(
    collector: Collector, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [track(f"u{i % 7}", "Viewed", f"f{i}") for i in range(1500)]
    lines[10] = {
        "type": "identify",
        "userId": "u1",
        "traits": {"n": 1},
        "messageId": "f10",
        "timestamp": "2024-01-02T03:04:05.678+00:00",
        "context": {"ip": "1.2.3.4"},
    }
    path = write_lines(tmp_path / "events.jsonl", lines)
    status, _, err = run_cli(
        capsys, "send", "--write-key", "k", "--host", collector.url, "--gzip", "--file", str(path)
    )
    assert status == 0, err
    assert "100% 1500/1500" in err
    assert "delivered 1500 message(s)" in err
    stored = collector.events()
    assert [m["messageId"] for m in stored] == [f"f{i}" for i in range(1500)]
    assert stored[10]["context"]["ip"] == "1.2.3.4"
    assert stored[10]["timestamp"] == "2024-01-02T03:04:05.678+00:00"


def test_send_file_counts_bad_lines_as_not_delivered(
    collector: Collector, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = [
        track(message_id="ok1"),
        "{broken",
        {"type": "track", "userId": "u"},
        {"type": "track", "userId": "u", "event": "E", "colour": "red"},
        track(message_id="ok2"),
    ]
    path = write_lines(tmp_path / "events.jsonl", lines)
    status, _, err = run_cli(
        capsys, "send", "--write-key", "k", "--host", collector.url, "--file", str(path)
    )
    assert status == 1
    assert "3 of 5 message(s) not delivered" in err
    assert "line 2" in err
    assert "sending [" not in err  # short files get no progress bar
    assert [m["messageId"] for m in collector.events()] == ["ok1", "ok2"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_send_exits_non_zero_when_the_server_is_unreachable(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_lines(tmp_path / "events.jsonl", [track() for _ in range(250)])
    url = f"http://127.0.0.1:{free_port()}"
    status, _, err = run_cli(
        capsys, "send", "--write-key", "k", "--host", url, "--max-retries", "0", "--file", str(path)
    )
    assert status == 1
    assert "250 of 250 message(s) not delivered" in err


def test_send_reports_a_refused_write_key(
    make_collector: Callable[..., Collector], capsys: pytest.CaptureFixture[str]
) -> None:
    keyed = make_collector(write_keys=["right"])
    status, _, err = run_cli(
        capsys,
        "send",
        "--write-key",
        "wrong",
        "--host",
        keyed.url,
        "track",
        "--user-id",
        "u",
        "--event",
        "E",
    )
    assert status == 1
    assert "1 of 1 message(s) not delivered" in err
    assert "unauthorized" in err
    assert call(keyed.url, "GET", "/api/events").json()["total"] == 0


def test_send_usage_errors(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEGMENT_WRITE_KEY", raising=False)
    status, _, err = run_cli(capsys, "send", "track", "--user-id", "u", "--event", "E")
    assert (status, "--write-key" in err) == (2, True)
    status, _, err = run_cli(capsys, "send", "--write-key", "k")
    assert (status, "--file" in err) == (2, True)
    with pytest.raises(SystemExit):
        cli.main(
            [
                "send",
                "--write-key",
                "k",
                "track",
                "--user-id",
                "u",
                "--event",
                "E",
                "--properties",
                "[1]",
            ]
        )


# -- tracking plans on the command line ---------------------------------------------------------


def test_collector_checks_messages_against_a_plan(tmp_path: Path) -> None:
    plan = str(write_plan(tmp_path, "segment"))
    bad = segment_track("Order Completed", {"order_id": "o"}, "bad")
    good = segment_track("Order Completed", GOOD_ORDER, "good")
    with collector_process("--db", str(tmp_path / "f.db"), "--plan", plan) as flagging:
        assert post(flagging.url, "/v1/batch", {"batch": [good, bad]}).status == 200
        [stored] = get(flagging.url, "/api/events?valid=false")["events"]
        assert stored["messageId"] == "bad"
        assert get(flagging.url, "/api/stats")["plan"]["mode"] == "flag"
        assert flagging.stop()[0] == 0
    args = ("--db", str(tmp_path / "b.db"), "--plan", plan, "--plan-mode", "block")
    with collector_process(*args) as blocking:
        refused = post(blocking.url, "/v1/batch", {"batch": [good, bad]})
        assert refused.status == 400
        assert refused.json()["violations"][0]["field"] == "properties.total"
        assert get(blocking.url, "/api/events")["total"] == 0
        assert blocking.stop()[0] == 0


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--plan-mode", "block"], "--plan-mode needs --plan"),
        (["--plan", "missing.json"], "cannot read the plan missing.json"),
        (["--plan-mode", "warn"], "invalid choice"),
    ],
)
def test_collector_refuses_a_plan_it_cannot_use(
    tmp_path: Path, args: list[str], error: str
) -> None:
    result = subprocess.run(
        [SCRIPT, "collector", "--port", "0", "--db", "e.db", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert error in result.stderr
    assert not (tmp_path / "e.db").exists()


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_plan_check_prints_each_violation_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = str(write_plan(tmp_path))
    lines = write_jsonl(
        tmp_path / "events.jsonl",
        [
            segment_track("Order Completed", GOOD_ORDER, "1"),
            segment_track("Order Completed", {"order_id": 5, "total": 1}, "2"),
            "",
            mixpanel_event("Signed Up", {"plan": "gold"}, "3"),
            {"type": "identify", "userId": "u", "traits": {"email": "ada@example.com"}},
            "{broken",
            {"hello": "world"},
        ],
    )
    status, out, err = run_cli(capsys, "plan", "check", plan, str(lines))
    assert status == 1
    printed = out.splitlines()
    assert printed[:2] == [
        "line 2 (Order Completed): type properties.order_id: properties.order_id must be a"
        " string, not an integer",
        'line 4 (Signed Up): enum properties.plan: properties.plan must be one of "free", "pro"',
    ]
    assert printed[2].startswith("line 6: not JSON: ")
    assert printed[3:] == ["line 7: neither a Segment message nor a Mixpanel record"]
    assert "6 message(s) checked against plan.json: 2 violation(s) in 2 message(s)" in err
    assert "2 unreadable line(s)" in err


def test_plan_check_passes_a_clean_file_and_refuses_a_bad_plan(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = str(write_plan(tmp_path, "segment"))
    lines = write_jsonl(tmp_path / "ok.jsonl", [segment_track("Signed Up", {"plan": "pro"}, "1")])
    status, out, err = run_cli(capsys, "plan", "check", plan, str(lines))
    assert (status, out) == (0, "")
    assert "1 message(s) checked against plan.json: 0 violation(s)" in err
    (tmp_path / "bad.json").write_text('{"events": []}')
    status, _, err = run_cli(capsys, "plan", "check", str(tmp_path / "bad.json"), str(lines))
    assert (status, err.strip()) == (
        2,
        "segment-clone plan: events must be an object keyed by event name",
    )
    status, _, err = run_cli(capsys, "plan", "check", plan, str(tmp_path / "none.jsonl"))
    assert status == 2
    assert "cannot read" in err


# -- segment-clone events --url ----------------------------------------------------------------


def test_events_reads_a_running_collector(
    make_collector: Callable[..., Collector], capsys: pytest.CaptureFixture[str]
) -> None:
    running = make_collector(plan=parse_plan(COMPACT))
    batch = [
        segment_track("Signed Up", {"plan": "pro"}, "1"),
        {"type": "identify", "anonymousId": "anon", "traits": {"email": "a@example.com"}},
        segment_track("Signed Up", {"plan": "gold"}, "3"),
        *[segment_track("Signed Up", {"plan": "free"}, f"x{i}") for i in range(600)],
    ]
    assert post(running.url, "/v1/batch", {"batch": batch}).status == 200
    url = running.url
    status, out, _ = run_cli(capsys, "events", "--url", url)
    assert status == 0
    assert [json.loads(line) for line in out.splitlines()] == batch  # paged, in order
    _, out, _ = run_cli(capsys, "events", "--url", url, "--valid", "false")
    assert [json.loads(line)["messageId"] for line in out.splitlines()] == ["3"]
    _, out, _ = run_cli(capsys, "events", "--url", url, "--user", "anon")
    assert [json.loads(line)["type"] for line in out.splitlines()] == ["identify"]
    _, out, _ = run_cli(capsys, "events", "--url", url, "--limit", "502")
    assert [json.loads(line)["messageId"] for line in out.splitlines()][:2] == ["x98", "x99"]
    assert len(out.splitlines()) == 502
    assert run_cli(capsys, "events", "--url", url, "--type", "identify", "--count")[1] == "1\n"
    _, out, _ = run_cli(capsys, "events", "--url", url, "--stats")
    assert json.loads(out)["invalid"] == 1


def test_events_says_when_it_cannot_read(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli(capsys, "events", "--url", f"http://127.0.0.1:{free_port()}")
    assert status == 1
    assert "cannot read http://127.0.0.1:" in err
    status, _, err = run_cli(capsys, "events", "--follow")
    assert (status, "give --url" in err) == (1, True)
    status, _, err = run_cli(capsys, "events", "--url", "ftp://example")
    assert (status, "http://" in err) == (1, True)


def test_events_follow_tails_a_collector_until_ctrl_c(collector: Collector) -> None:
    assert post(collector.url, "/v1/track", track("u1", "Before", "b1")).status == 200
    follower = subprocess.Popen(
        [SCRIPT, "events", "--url", collector.url, "--follow", "--type", "track"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert follower.stdout is not None
        assert json.loads(follower.stdout.readline())["messageId"] == "b1"
        assert post(collector.url, "/v1/identify", {"userId": "u1", "messageId": "i"}).status
        assert post(collector.url, "/v1/track", track("u1", "After", "a1")).status == 200
        assert json.loads(follower.stdout.readline())["messageId"] == "a1"
        batch = [track("u1", "Later", f"l{i}") for i in range(3)]
        assert post(collector.url, "/v1/batch", {"batch": batch}).status == 200
        later = [json.loads(follower.stdout.readline())["messageId"] for _ in range(3)]
        assert later == ["l0", "l1", "l2"]
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
            follower.communicate()
    assert (follower.returncode, out, err) == (0, "", "")


# -- access: secrets from the environment, the debugger's token ------------------------------


def test_secrets_and_the_token_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEGMENT_CLONE_WRITE_KEY", "k1, k2")
    monkeypatch.setenv("SEGMENT_CLONE_MIXPANEL_SECRET", "mp-secret")
    monkeypatch.setenv("SEGMENT_CLONE_COLLECTOR_TOKEN", "tok-from-env")
    with collector_process("--db", str(tmp_path / "e.db")) as running:
        assert running.proc.stdout is not None
        assert running.proc.stdout.readline() == f"debugger: {running.url}/?token=tok-from-env\n"
        assert call(running.url, "GET", "/api/stats").status == 401
        assert call(running.url, "GET", "/api/stats?token=tok-from-env").status == 200
        assert post(running.url, "/v1/batch", {"batch": [track()], "writeKey": "k3"}).status == 401
        assert post(running.url, "/v1/batch", {"batch": [track()], "writeKey": "k2"}).status == 200
        record = mixpanel_event("Imported", {}, "i1")
        assert post(running.url, "/import", [record]).status == 401
        assert running.stop()[0] == 0


def access(*argv: str) -> str | None:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return command.access_token(parser.parse_args(argv))


def test_beyond_loopback_a_token_is_generated_unless_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("SEGMENT_CLONE_COLLECTOR_TOKEN", raising=False)
    assert access() is None
    assert access("--host", "::1") is None
    generated = access("--host", "0.0.0.0")
    assert generated is not None and len(generated) >= 32
    assert access("--host", "0.0.0.0") != generated
    assert access("--host", "192.168.1.20", "--token", "mine") == "mine"
    assert capsys.readouterr().err == ""
    assert access("--host", "0.0.0.0", "--no-token") is None
    assert "anyone who can reach this port" in capsys.readouterr().err


def test_events_reads_a_collector_that_needs_a_token(
    make_collector: Callable[..., Collector],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SEGMENT_CLONE_COLLECTOR_TOKEN", raising=False)
    running = make_collector(token="tok")
    assert post(running.url, "/v1/batch", {"batch": [track(message_id="t1")]}).status == 200
    status, _, err = run_cli(capsys, "events", "--url", running.url, "--count")
    assert status != 0 and "401" in err
    assert run_cli(capsys, "events", "--url", f"{running.url}/?token=tok", "--count")[1] == "1\n"
    monkeypatch.setenv("SEGMENT_CLONE_COLLECTOR_TOKEN", "tok")
    assert run_cli(capsys, "events", "--url", running.url, "--count")[1] == "1\n"
