"""Proof under faults for the Mixpanel face: a producer process sends through
``AsyncBufferedConsumer`` while the server misbehaves (503s, a 3 s outage, ``strict=1`` partial
failures, the collector killed with SIGKILL and restarted). Every accepted record must arrive, and
none twice; a refused record reaches ``on_error`` instead, and only it."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from pathlib import Path
from typing import Any, Callable

from segment_clone.collector import Collector, Faults, FaultSettings

from ..api import get
from ..processes import collector_process, run_script, start_script
from ..server import Reply, ScriptedServer
from .conftest import OK, data

PRODUCER = """
import json, sys, time
from segment_clone.mixpanel import AsyncBufferedConsumer, Mixpanel
refused = []
consumer = AsyncBufferedConsumer(
    api_host=sys.argv[1], flush_interval=0.05, max_queue_size=100_000, import_max_size=50,
    on_error=lambda error, messages: refused.extend(messages),
)
count, pace, invalid_every = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
mp = Mixpanel("tok", consumer)
ids = iter(range(count))
mp._make_insert_id = lambda: f"id-{next(ids)}"
for i in range(count):
    if invalid_every:  # imports, every invalid_every-th without an event name
        name = "" if i % invalid_every == 0 else "Old"
        record = {"event": name, "properties": {"time": 1.6e9 + i, "$insert_id": f"id-{i}"}}
        consumer.send("imports", json.dumps(record))
    else:
        mp.track("u", "stream", {"i": i})
    if pace:
        time.sleep(pace)
pending = consumer.flush(timeout=120)
print(json.dumps({"pending": pending, "stats": consumer.stats(), "refused": refused}))
"""


def args(url: str, count: int, pace: float = 0.0, invalid_every: int = 0) -> list[str]:
    return [url, str(count), str(pace), str(invalid_every)]


def finish(producer: Any) -> dict[str, Any]:
    out, err = producer.communicate(timeout=180)
    assert producer.returncode == 0, err
    report: dict[str, Any] = json.loads(out)
    assert report["pending"] == 0
    return report


def acknowledged(server: ScriptedServer) -> Counter[str]:
    """``$insert_id``s of the records in requests answered 2xx, with how often each came."""
    return Counter(
        m["properties"]["$insert_id"]
        for r in server.requests
        if r.status is not None and 200 <= r.status < 300
        for m in data(r)
    )


def check_once(ids: Counter[str], count: int) -> None:
    assert set(ids) == {f"id-{i}" for i in range(count)}, "some accepted records never arrived"
    assert sum(n - 1 for n in ids.values()) == 0, "some records arrived twice"


def test_thirty_percent_503(mp_server: ScriptedServer) -> None:
    rng = random.Random(21)
    mp_server.chooser = lambda: Reply(503) if rng.random() < 0.3 else OK
    result = run_script(PRODUCER, *args(mp_server.url, 2000), timeout=180)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    check_once(acknowledged(mp_server), 2000)
    assert report["stats"]["delivered"] == 2000 and report["stats"]["dropped"] == {}
    assert any(r.status == 503 for r in mp_server.requests)


def test_server_unreachable_for_three_seconds(mp_server: ScriptedServer) -> None:
    producer = start_script(PRODUCER, *args(mp_server.url, 3000, pace=0.001))
    mp_server.wait_for(3)  # the stream is flowing
    mp_server.go_down()
    outage = threading.Event()
    threading.Timer(3.0, lambda: (mp_server.come_back(), outage.set())).start()
    report = finish(producer)
    assert outage.is_set()
    check_once(acknowledged(mp_server), 3000)
    assert report["stats"]["delivered"] == 3000 and report["stats"]["retried"] > 0


def test_strict_partial_failures_under_503s(make_collector: Callable[..., Collector]) -> None:
    """``strict=1`` answers name the refused records while 503s force retries: the valid
    records are stored once, the refused ones reach ``on_error`` once, nothing else."""
    faults = Faults(FaultSettings(0.3, 503), rng=random.Random(5))
    collector = make_collector(faults=faults)
    result = run_script(PRODUCER, *args(collector.url, 1400, invalid_every=7), timeout=180)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    stored = Counter(e["properties"]["$insert_id"] for e in collector.events(type="import"))
    valid = {f"id-{i}" for i in range(1400) if i % 7}
    assert set(stored) == valid and sum(stored.values()) == len(valid)
    refused = sorted(m["properties"]["$insert_id"] for m in report["refused"])
    assert refused == sorted(f"id-{i}" for i in range(0, 1400, 7))
    assert report["stats"]["delivered"] == len(valid)
    assert report["stats"]["dropped"] == {"rejected": 200}
    assert faults.injected > 0


def test_collector_killed_and_restarted(tmp_path: Path) -> None:
    """SIGKILL mid-stream: what the collector committed survives, the batches it never
    answered are sent again to its successor, and Mixpanel's dedup key stores them once."""
    db = str(tmp_path / "events.db")
    with collector_process("--db", db) as first:
        port = first.url.rsplit(":", 1)[1]
        producer = start_script(PRODUCER, *args(first.url, 3000, pace=0.001))
        wait_for_stored(first.url, 200)
        first.proc.kill()  # SIGKILL
        first.proc.communicate(timeout=10)
    with collector_process("--db", db, "--port", port) as second:
        report = finish(producer)
        assert get(second.url, "/api/stats")["total"] == 3000
    restored = Collector(port=0, db_path=tmp_path / "events.db").start()
    try:
        stored = Counter(e["properties"]["$insert_id"] for e in restored.events(type="track"))
    finally:
        restored.close()
    check_once(stored, 3000)
    assert report["stats"]["delivered"] == 3000 and report["stats"]["dropped"] == {}
    assert report["stats"]["retried"] > 0  # the kill was felt, and ridden out


def wait_for_stored(url: str, count: int) -> None:
    """Poll the collector's stats until ``count`` events are stored (bounded)."""
    for _ in range(2000):
        if get(url, "/api/stats")["total"] >= count:
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"fewer than {count} events stored")
