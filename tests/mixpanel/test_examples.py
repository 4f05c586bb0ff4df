"""Both Mixpanel examples, run end to end as scripts against the loopback server (A33)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..server import Reply, ScriptedServer
from .conftest import data

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run(name: str, server: ScriptedServer) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--api-host", server.url, "--token", "tok"],
        check=False, timeout=60, capture_output=True, text=True,
    )  # fmt: skip


def test_post_an_event(mp_server: ScriptedServer) -> None:
    done = run("post_an_event.py", mp_server)
    assert done.returncode == 0, done.stderr
    (rec,) = mp_server.requests
    assert rec.path == "/track"
    event = data(rec)
    assert event["event"] == "Script run"
    assert (event["properties"]["distinct_id"], event["properties"]["token"]) == ("ID", "tok")


def test_post_an_event_fails_loudly(mp_server: ScriptedServer) -> None:
    mp_server.default = Reply(200, {"status": 0, "error": "token invalid"})
    done = run("post_an_event.py", mp_server)
    assert done.returncode != 0
    assert "Mixpanel error: token invalid" in done.stderr


def test_a33_subprocess_consumer(mp_server: ScriptedServer) -> None:
    done = run("subprocess_consumer.py", mp_server)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("tick ") == 100
    assert [r.path for r in mp_server.requests] == ["/track", "/track"]
    batches = [data(r) for r in mp_server.requests]
    assert [len(b) for b in batches] == [50, 50]
    events = [e for b in batches for e in b]
    assert [e["properties"]["Tick Number"] for e in events] == list(range(100))
    ids = {e["properties"]["distinct_id"] for e in events}
    assert len(ids) == 1 and len(ids.pop()) == 32
