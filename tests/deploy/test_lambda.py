"""AWS Lambda's own runtime client, ``awslambdaric``, against a Runtime API that freezes the
process (SIGSTOP) the moment each response is posted, as the platform does: with
``flush_after``, every event of an invocation is stored before the freeze, and the warm
process delivers the next invocation's after it is thawed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from segment_clone.collector import Collector

from .harness import assert_all_stored, serve
from .runtime_api import RuntimeAPI

EVENTS = (3, 2)
"""Events tracked by each invocation, in order: the second one runs in the thawed process."""


@pytest.mark.parametrize(
    "handler",
    [
        "handler",
        pytest.param(
            "unflushed",
            marks=pytest.mark.xfail(
                strict=True,
                reason="without flush_after, what the handler queued waits in the frozen "
                "process, and is lost when the platform recycles it",
            ),
        ),
    ],
)
def test_every_event_is_stored_before_the_freeze(
    handler: str, collector: Collector, tmp_path: Path
) -> None:
    command = [sys.executable, "-m", "awslambdaric", f"tracked_lambda.{handler}"]
    with RuntimeAPI() as api:
        env = {"AWS_LAMBDA_RUNTIME_API": api.address}
        with serve(command, None, collector, tmp_path, env) as runtime:
            api.pid = runtime.proc.pid
            for count in EVENTS:
                kind, answer = api.invoke({"events": count})
                assert kind == "response", (answer, runtime.output())
                assert len(answer["messageIds"]) == count
                # Frozen: nothing more can arrive; what is not stored now would be lost.
                stored = {m["messageId"] for m in collector.events()}
                missing = set(runtime.accepted_ids()) - stored
                assert not missing, f"{len(missing)} not stored before the freeze"
                api.thaw()
    assert_all_stored(runtime, collector, timeout=0, exit_hooks=False)
