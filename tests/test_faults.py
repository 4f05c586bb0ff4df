"""Proof under faults: a real producer process streams events while the server misbehaves.

Each test counts what the server acknowledged (a 2xx answer) per messageId: every accepted
message must be there, and none twice, because in these faults the server never acknowledges
a batch whose response the client then loses.
"""

from __future__ import annotations

import json
import random
import threading
from collections import Counter

from .processes import run_script, start_script
from .server import Reply, ScriptedServer

PRODUCER = """
import json, sys
import segment_clone as analytics
analytics.write_key = "wk"
analytics.host = sys.argv[1]
analytics.upload_size = 50
analytics.upload_interval = 0.05
accepted = []
for i in range(int(sys.argv[2])):
    ok, msg = analytics.track("u", "stream", {"i": i})
    if ok:
        accepted.append(msg["messageId"])
pending = analytics.flush(timeout=120)
print(json.dumps({"accepted": accepted, "pending": pending, "stats": analytics.stats()}))
"""


def produce(server: ScriptedServer, count: int) -> dict[str, object]:
    result = run_script(PRODUCER, server.url, str(count), timeout=180)
    assert result.returncode == 0, result.stderr
    report: dict[str, object] = json.loads(result.stdout)
    return report


def check_nothing_lost(server: ScriptedServer, report: dict[str, object], count: int) -> None:
    accepted = report["accepted"]
    assert isinstance(accepted, list) and len(accepted) == count
    assert report["pending"] == 0
    acknowledged = Counter(m["messageId"] for m in server.acknowledged())
    assert set(acknowledged) == set(accepted), "some accepted messages never arrived"
    duplicates = sum(n - 1 for n in acknowledged.values())
    assert duplicates == 0
    stats = report["stats"]
    assert isinstance(stats, dict)
    assert stats["delivered"] == count and stats["dropped"] == {}


def test_thirty_percent_503(server: ScriptedServer) -> None:
    rng = random.Random(1234)
    server.chooser = lambda: Reply(503) if rng.random() < 0.3 else Reply(200)
    report = produce(server, 2000)
    check_nothing_lost(server, report, 2000)
    assert any(r.status == 503 for r in server.requests)


def test_connections_reset_mid_request(server: ScriptedServer) -> None:
    rng = random.Random(99)
    server.chooser = lambda: Reply(reset=True) if rng.random() < 0.25 else Reply(200)
    report = produce(server, 2000)
    check_nothing_lost(server, report, 2000)
    assert any(r.status is None for r in server.requests)


def test_rate_limited_with_retry_after(server: ScriptedServer) -> None:
    server.script(Reply(200), Reply(429, headers={"Retry-After": "1"}))
    report = produce(server, 1000)
    check_nothing_lost(server, report, 1000)
    limited = next(i for i, r in enumerate(server.requests) if r.status == 429)
    retry = server.requests[limited + 1]
    assert retry.at - server.requests[limited].at >= 1.0, "a request came before Retry-After"


def test_server_unreachable_for_three_seconds(server: ScriptedServer) -> None:
    producer = start_script(
        PRODUCER.replace(
            "for i in range(int(sys.argv[2])):",
            "import time\nfor i in range(int(sys.argv[2])):\n    time.sleep(0.001)",
        ),
        server.url,
        "3000",
    )
    server.wait_for(3)  # the stream is flowing
    server.go_down()
    outage = threading.Event()
    threading.Timer(3.0, lambda: (server.come_back(), outage.set())).start()
    out, err = producer.communicate(timeout=180)
    assert outage.is_set()
    assert producer.returncode == 0, err
    report = json.loads(out)
    check_nothing_lost(server, report, 3000)
    assert report["stats"]["retried"] > 0  # the outage was felt, and ridden out
