"""A Celery worker with the prefork pool and a real Redis broker: tasks sent from scopes in
another process run in those scopes, and what the pool's children tracked is delivered when
SIGTERM (Celery's warm shutdown) stops the worker. The children end with ``os._exit``, so no
exit hook runs in them: the integration flushes at ``worker_process_shutdown``."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from segment_clone.collector import Collector

from .harness import BIN, Output, app_environment, assert_all_stored, serve

TASKS = 4
SENDER = """
    import sys

    import segment_clone as analytics
    from tracked_celery import signup

    sent = []
    for i in range(int(sys.argv[1])):
        with analytics.scope(user_id=f"user-{i}"):
            sent.append(signup.delay(f"plan-{i}"))
    print(" ".join(result.get(timeout=30) for result in sent))
"""


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A Redis server of the test's own, on a Unix socket (no TCP port to pick)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server; .ci/run does)")
    sock = tmp_path / "redis.sock"
    proc = subprocess.Popen(
        [binary, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    output = Output(proc.stdout)
    try:
        output.wait_for("ready to accept connections")  # Redis 7; 6 says "Ready to accept"
        yield f"redis+socket://{sock}"
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if output.finished(timeout=10):
            proc.stdout.close()


def test_prefork_worker_runs_tasks_in_their_scopes_and_loses_nothing(
    redis_url: str, collector: Collector, tmp_path: Path
) -> None:
    env = {"DEPLOY_BROKER": redis_url}
    command = [
        *(str(BIN / "celery"), "--app=tracked_celery", "worker", "--pool=prefork"),
        *("--concurrency=2", "--loglevel=INFO"),
        *("--without-heartbeat", "--without-gossip", "--without-mingle"),
    ]
    with serve(command, None, collector, tmp_path, env) as worker:
        sender = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(SENDER), str(TASKS)],
            capture_output=True,
            text=True,
            timeout=60,
            env=app_environment(collector, tmp_path, env),
        )
        assert sender.returncode == 0, (sender.stderr, worker.output())
        assert sender.stdout.split() == [f"user-{i}" for i in range(TASKS)]
        assert worker.stop(signal.SIGTERM) == 0, worker.output()
    assert_all_stored(worker, collector, exit_hooks=False)
    users = {e["properties"]["plan"]: e["userId"] for e in collector.events(event="Signed Up")}
    assert users == {f"plan-{i}": f"user-{i}" for i in range(TASKS)}
