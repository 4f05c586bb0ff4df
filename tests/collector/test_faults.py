"""Fault injection: failed requests store nothing; settings change at run time."""

from __future__ import annotations

import random
import threading
from typing import Callable

import pytest

from segment_clone.collector import Collector, Faults, FaultSettings

from ..api import call, get, post, track


def test_a_failed_request_stores_nothing_and_says_when_to_retry(
    make_collector: Callable[..., Collector],
) -> None:
    collector = make_collector(faults=Faults(FaultSettings(1.0, 503, retry_after=2)))
    reply = post(collector.url, "/v1/batch", {"batch": [track(message_id="f1")]})
    assert reply.status == 503
    assert reply.headers["retry-after"] == "2"
    assert reply.json()["code"] == "injected_fault"
    assert collector.events() == []
    assert get(collector.url, "/api/stats")["faults"]["injected"] == 1


def test_faults_follow_the_random_source(make_collector: Callable[..., Collector]) -> None:
    collector = make_collector(faults=Faults(FaultSettings(0.5, 500), rng=random.Random(3)))
    statuses = [
        post(collector.url, "/v1/batch", {"batch": [track(message_id=str(i))]}).status
        for i in range(20)
    ]
    expected_rng = random.Random(3)
    assert statuses == [500 if expected_rng.random() < 0.5 else 200 for _ in range(20)]
    assert len(collector.events()) == statuses.count(200)


def test_faults_are_set_at_run_time_and_spare_the_inspection_api(collector: Collector) -> None:
    changed = post(collector.url, "/api/faults", {"fail_rate": 1, "fail_status": 429})
    assert changed.status == 200
    assert changed.json() == {
        "fail_rate": 1.0,
        "fail_status": 429,
        "retry_after": None,
        "delay_ms": 0.0,
        "injected": 0,
    }
    assert post(collector.url, "/v1/track", track()).status == 429
    assert get(collector.url, "/api/events")["total"] == 0
    assert get(collector.url, "/api/faults")["injected"] == 1
    assert post(collector.url, "/api/faults", {"fail_rate": 0}).json()["fail_status"] == 429
    assert post(collector.url, "/v1/track", track()).status == 200


@pytest.mark.parametrize(
    "settings",
    [
        {"fail_rate": 1.5},
        {"fail_status": 200},
        {"fail_status": 5.5},
        {"retry_after": -1},
        {"delay_ms": -5},
        {"fail_rate": None},
        {"surprise": 1},
        ["fail_rate", 1],
    ],
)
def test_bad_fault_settings_get_400_and_change_nothing(
    collector: Collector, settings: object
) -> None:
    reply = post(collector.url, "/api/faults", settings)
    assert reply.status == 400
    assert get(collector.url, "/api/faults")["fail_rate"] == 0.0


def test_a_delayed_answer_comes_after_the_messages_are_stored(collector: Collector) -> None:
    collector.faults.update({"delay_ms": 1000})
    answered = threading.Event()

    def send() -> None:
        post(collector.url, "/v1/batch", {"batch": [track(message_id="slow")]})
        answered.set()

    sender = threading.Thread(target=send)
    sender.start()
    collector.wait_for(1, timeout=10)
    assert not answered.is_set()
    sender.join(10)
    assert answered.is_set()


def test_the_faults_endpoint_needs_json(collector: Collector) -> None:
    json_type = {"Content-Type": "application/json"}
    assert call(collector.url, "POST", "/api/faults", b"fail_rate=1").status == 403
    assert call(collector.url, "POST", "/api/faults", b"fail_rate=1", json_type).status == 400
