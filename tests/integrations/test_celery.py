"""Celery's ``instrument``: a task runs inside the scope it was sent from. A real worker (solo
pool, in a thread of this process) takes the messages from Celery's in-memory broker, so the
scope can only have travelled in the message's headers. The prefork pool and a real broker are
covered by the deployment tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery, signals
from celery.contrib.testing.worker import start_worker

import segment_clone as analytics
from segment_clone import Client
from segment_clone.collector import Collector
from segment_clone.integrations.celery import HEADER, instrument
from segment_clone.scopes import current_frame

APPS = itertools.count()


@pytest.fixture
def app(patient_client: Client) -> Iterator[Celery]:
    app = Celery(f"tests{next(APPS)}", broker="memory://", backend="cache+memory://")
    app.conf.broker_transport_options = {"polling_interval": 0.01}  # the default waits 1 s

    @app.task(name=f"{app.main}.signup")  # type: ignore[untyped-decorator]
    def signup(plan: str) -> str | None:
        ok, msg = patient_client.track(event="Task Ran", properties={"plan": plan})
        return str(msg["userId"]) if ok else None

    instrument(app, client=patient_client)
    yield app


def test_a_task_runs_in_the_scope_it_was_sent_from(
    app: Celery, patient_client: Client, collector: Collector
) -> None:
    task: Any = app.tasks[f"{app.main}.signup"]
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        with analytics.scope(user_id="u1", anonymous_id="a1", context={"ip": "203.0.113.4"}):
            scoped = task.delay("pro")
        with analytics.scope(user_id="u2", properties={"source": "admin"}):
            other = task.delay("free")
        assert scoped.get(timeout=10) == "u1"
        assert other.get(timeout=10) == "u2"
        unscoped = task.delay("none")
        with pytest.raises(AssertionError, match="user_id or anonymous_id"):
            unscoped.get(timeout=10)  # sent from no scope: no identity in the worker
    assert patient_client.flush(timeout=10) == 0
    events = {e["properties"]["plan"]: e for e in collector.events(event="Task Ran")}
    assert (events["pro"]["userId"], events["pro"]["anonymousId"]) == ("u1", "a1")
    assert events["pro"]["context"]["ip"] == "203.0.113.4"
    assert events["free"]["properties"] == {"plan": "free", "source": "admin"}


def test_the_scope_travels_as_json_in_a_header(app: Celery) -> None:
    published: list[dict[str, Any]] = []

    def record(headers: dict[str, Any], **_: Any) -> None:
        published.append(dict(headers))

    signals.before_task_publish.connect(record, weak=False)
    try:
        with analytics.scope(user_id=7, context={"when": object()}):
            app.tasks[f"{app.main}.signup"].delay("pro")
    finally:
        signals.before_task_publish.disconnect(record)
    assert published[0][HEADER] == {"user_id": "7", "context": {}}  # not JSON: dropped


def test_eager_tasks_run_in_the_callers_scope(app: Celery, collector: Collector) -> None:
    with analytics.scope(user_id="u3"):
        assert app.tasks[f"{app.main}.signup"].apply(args=("eager",)).get() == "u3"


def test_two_instrumented_apps_leave_no_scope_behind(app: Celery) -> None:
    """Each app's handlers enter and leave the scope of its own tasks only: with both entering,
    leaving in connection order would restore the first one's frame after the task."""
    other = Celery(f"tests{next(APPS)}", broker="memory://", backend="cache+memory://")
    instrument(other)
    task = app.tasks[f"{app.main}.signup"]
    task.push_request(**{HEADER: {"user_id": "u9"}})
    try:
        signals.task_prerun.send(sender=task, task_id="t1", task=task, args=(), kwargs={})
        assert current_frame() is not None and current_frame().user_id == "u9"
        signals.task_postrun.send(sender=task, task_id="t1", task=task, args=(), kwargs={})
    finally:
        task.pop_request()
    assert current_frame() is None
