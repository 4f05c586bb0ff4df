"""The Mixpanel facade and the collector together, over real sockets: through injected faults,
lost answers, many threads, and the examples run as scripts against a collector process."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import pytest
import urllib3.util.retry

from segment_clone.collector import Collector, Faults, FaultSettings
from segment_clone.mixpanel import (
    AsyncBufferedConsumer,
    BufferedConsumer,
    Consumer,
    Mixpanel,
    MixpanelException,
    ServiceAccountCredentials,
)

from ..api import get
from ..collector.test_mixpanel_endpoints import TYPES, Tee, stored
from ..mixpanel.conftest import Sleeps
from ..processes import SCRIPT, collector_process

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def send_a_mix(mp: Mixpanel, n: int) -> None:
    """``n`` of each: events, profile and group updates, and imports."""
    for i in range(n):
        mp.track(f"u{i % 7}", "Clicked", {"i": i})
        mp.people_increment(f"u{i % 7}", {"clicks": 1})
        mp.group_set("company", f"c{i % 3}", {"last": i})
        mp.import_data(None, f"u{i % 7}", "Backfilled", 1_600_000_000 + i, {"i": i})


def assert_stored_once(collector: Collector, sent: Tee) -> None:
    for endpoint, type_ in TYPES.items():
        assert stored(collector, type_) == sent.sent[endpoint], type_
    assert collector.stats()["duplicates"] == 0


def test_async_consumer_retries_injected_faults_and_stores_everything_once(
    make_collector: Callable[..., Collector],
    async_consumers: Callable[..., AsyncBufferedConsumer],
    waits: list[float],
) -> None:
    faults = Faults(FaultSettings(0.4, 503, retry_after=2), rng=random.Random(7))
    collector = make_collector(faults=faults)
    consumer = async_consumers(api_host=collector.url, max_size=10, import_max_size=25)
    sent = Tee(consumer)
    send_a_mix(Mixpanel("tok", sent), 60)
    assert consumer.flush(timeout=30) == 0
    assert_stored_once(collector, sent)
    assert faults.injected > 0
    stats = consumer.stats()
    assert (stats["delivered"], stats["dropped"], stats["pending"]) == (240, {}, 0)
    assert stats["retried"] == faults.injected
    assert waits == [2] * faults.injected  # Retry-After, on the virtual clock


def test_buffered_consumer_retries_injected_faults_through_urllib3(
    make_collector: Callable[..., Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps = Sleeps()
    monkeypatch.setattr(urllib3.util.retry, "time", sleeps)
    faults = Faults(FaultSettings(0.3, 503, retry_after=1), rng=random.Random(3))
    collector = make_collector(faults=faults)
    sent = Tee(BufferedConsumer(10, api_host=collector.url, request_timeout=10))
    send_a_mix(Mixpanel("tok", sent), 40)
    sent.inner.flush()
    assert_stored_once(collector, sent)
    assert faults.injected > 0
    assert sleeps == [1] * faults.injected


def test_a_lost_answer_is_retried_and_deduplicated_by_insert_id(
    collector: Collector, async_consumers: Callable[..., AsyncBufferedConsumer], waits: list[float]
) -> None:
    """The first answer comes after the consumer gave up waiting: the retry sends events that
    were already stored, and the collector counts them as duplicates."""
    collector.faults.update({"delay_ms": 1000})
    consumer = async_consumers(api_host=collector.url, request_timeout=0.3, max_size=5)
    sent = Tee(consumer)
    mp = Mixpanel("tok", sent)
    for i in range(5):
        mp.track("u1", "Paid", {"n": i})
    collector.wait_for(5, timeout=10, source="mixpanel")  # stored; the answer is held back
    collector.faults.update({"delay_ms": 0})
    assert consumer.flush(timeout=30) == 0
    assert stored(collector, "track") == sent.sent["events"]
    assert collector.stats()["duplicates"] >= 5
    assert consumer.stats()["retried"] >= 1


def test_ten_thousand_events_from_four_threads_none_lost(
    collector: Collector, async_consumers: Callable[..., AsyncBufferedConsumer]
) -> None:
    consumer = async_consumers(api_host=collector.url)
    mp = Mixpanel("tok", consumer)
    per_thread = 2500

    def produce(worker: int) -> None:
        for i in range(per_thread):
            mp.track(f"user-{worker}", "Tick", {"worker": worker, "i": i})

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert consumer.flush(timeout=60) == 0
    events = stored(collector, "track")
    assert len({e["properties"]["$insert_id"] for e in events}) == len(events) == 10_000
    for worker in range(4):
        mine = [e["properties"]["i"] for e in events if e["properties"]["worker"] == worker]
        assert mine == list(range(per_thread))  # one lane: each thread's order is kept
    stats = consumer.stats()
    assert (stats["enqueued"], stats["delivered"], stats["dropped"]) == (10_000, 10_000, {})


# -- against a collector process ---------------------------------------------------------------


def run_example(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_both_examples_run_against_a_collector_process(tmp_path: Path) -> None:
    with collector_process("--db", str(tmp_path / "events.db")) as running:
        out = run_example("post_an_event.py", "--api-host", running.url, "--token", "tok")
        assert out == f"posted 'Script run' to {running.url}\n"
        [posted] = get(running.url, "/api/events?source=mixpanel&event=Script%20run")["events"]
        assert posted["properties"]["distinct_id"] == "ID"
        assert posted["properties"]["token"] == "tok"

        out = run_example("subprocess_consumer.py", env={"MIXPANEL_API_HOST": running.url})
        assert out.count("tick ") == 100
        ticks = get(running.url, "/api/events?type=track&event=Tick")
        assert ticks["total"] == 100
        props = [e["properties"] for e in ticks["events"]]
        assert sorted(p["Tick Number"] for p in props) == list(range(100))
        assert len({p["$insert_id"] for p in props}) == 100
        [distinct_id] = {p["distinct_id"] for p in props}
        assert len(distinct_id) == 32
        by_user = get(running.url, f"/api/events?user_id={distinct_id}")
        assert by_user["total"] == 100
        assert get(running.url, "/api/stats")["sources"]["mixpanel"]["types"] == {"track": 101}
        assert running.stop()[0] == 0


def test_mixpanel_secret_option_guards_import(tmp_path: Path) -> None:
    args = ("--db", str(tmp_path / "events.db"), "--mixpanel-secret", "S3CRET")
    with collector_process(*args) as running:
        consumer = Consumer(api_host=running.url, request_timeout=10)
        mp = Mixpanel("tok", consumer)
        mp.import_data(None, "u1", "With Secret", 1.0, api_secret="S3CRET")
        with pytest.raises(MixpanelException, match="wrong project secret"):
            mp.import_data(None, "u1", "Wrong Secret", 1.0, api_secret="nope")
        with pytest.raises(MixpanelException, match="needs HTTP Basic auth"):
            mp.merge(None, "u1", "u2")
        service = ServiceAccountCredentials("svc", "S3CRET", "7")
        Mixpanel("tok", Consumer(api_host=running.url, credentials=service)).merge(None, "u1", "u2")
        mp.track("u1", "No Secret Needed")
        events = get(running.url, "/api/events?source=mixpanel")["events"]
        assert [e["event"] for e in events] == ["With Secret", "$merge", "No Secret Needed"]
        assert running.stop()[0] == 0


def test_an_empty_mixpanel_secret_is_a_usage_error() -> None:
    done = subprocess.run(
        [SCRIPT, "collector", "--port", "0", "--mixpanel-secret", ""],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--mixpanel-secret: must not be empty" in done.stderr
