"""The ``segment-clone`` command: collector (as a real process), events and send."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from segment_clone import cli
from segment_clone.collector import Collector

from ..api import call, get, post, track
from ..processes import MODULE, SCRIPT, collector_process

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
