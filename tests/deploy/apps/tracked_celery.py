"""The Celery app of the Celery deployment test: ``signup`` tracks one event with no identity
of its own, so the user it is stored with can only have come, with the scope, from the sender.
Importing ``tracked_wsgi`` tracks its import-time event in the worker's main process, before
the prefork pool forks its children."""

from __future__ import annotations

import os

from celery import Celery
from tracked_wsgi import record

import segment_clone as analytics
from segment_clone.integrations.celery import instrument

app = instrument(Celery("tracked_celery", broker=os.environ["DEPLOY_BROKER"]))
app.conf.result_backend = os.environ["DEPLOY_BROKER"]


@app.task(name="tracked_celery.signup")  # type: ignore[untyped-decorator]
def signup(plan: str) -> str:
    ok, message = analytics.track(event="Signed Up", properties={"plan": plan})
    assert ok, message
    record(message)
    return str(message["userId"])
