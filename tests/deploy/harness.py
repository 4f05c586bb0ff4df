"""What every deployment test does: serve an app from a real server process on a socket the
test bound, send it requests, stop it as an operator would, and compare the messageIds the app
accepted with those the collector stored."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from segment_clone.collector import Collector

from ..api import call

APPS = Path(__file__).resolve().parent / "apps"
BIN = Path(sys.executable).parent
ACCEPTED, EXITED = "accepted.txt", "exited.txt"
STOP_TIMEOUT = 30.0
"""Seconds a server has to stop after its signal; its graceful stop is far shorter."""


class Output:
    """A server's output, read line by line as it comes, so that a test can wait for a line
    (woken by each line, never polling)."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = STOP_TIMEOUT) -> None:
        with self._changed:
            seen = self._changed.wait_for(lambda: text in "".join(self._lines), timeout)
        assert seen, f"{text!r} never appeared in:\n{self}"

    def finished(self, timeout: float) -> bool:
        """Whether the output ended (every process that held it has exited)."""
        self._reader.join(timeout)
        return not self._reader.is_alive()

    def __str__(self) -> str:
        with self._changed:
            return "".join(self._lines)


@dataclass
class Served:
    proc: subprocess.Popen[str]
    url: str
    log: Output
    accepted: Path
    exited: Path

    def get(self, path: str = "/track") -> dict[str, Any]:
        """One request; the app's JSON reply (the messageId it tracked and the worker's pid)."""
        reply = call(self.url, "GET", path)
        assert reply.status == 200, (reply, self.output())
        result: dict[str, Any] = json.loads(reply.body)
        return result

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Signal the server and wait for it to exit; its exit status."""
        self.proc.send_signal(signum)
        return self.proc.wait(timeout=STOP_TIMEOUT)

    def accepted_ids(self) -> list[str]:
        return [line.split()[1] for line in self.accepted.read_text().splitlines()]

    def accepting_pids(self) -> set[str]:
        return {line.split()[0] for line in self.accepted.read_text().splitlines()}

    def exited_pids(self) -> set[str]:
        return set(self.exited.read_text().split()) if self.exited.exists() else set()

    def output(self) -> str:
        return str(self.log)


def app_environment(
    collector: Collector, tmp_path: Path, env: dict[str, str] | None = None
) -> dict[str, str]:
    """The environment of a process that runs the apps: where they send, and the files where
    they record what they accepted and which processes finished exiting."""
    return {
        **os.environ,
        **(env or {}),
        "SEGMENT_HOST": collector.url,
        "DEPLOY_ACCEPTED": str(tmp_path / ACCEPTED),
        "DEPLOY_EXITED": str(tmp_path / EXITED),
        "PYTHONPATH": os.pathsep.join([str(APPS), os.environ.get("PYTHONPATH", "")]),
    }


@contextmanager
def listening_socket() -> Iterator[socket.socket]:
    """A loopback socket bound to a free port and listening, for the server to inherit:
    requests wait in its backlog until a worker accepts them, so no readiness polling."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        sock.set_inheritable(True)
        yield sock
    finally:
        sock.close()


@contextmanager
def serve(
    command: Sequence[str],
    sock: socket.socket | None,
    collector: Collector,
    tmp_path: Path,
    env: dict[str, str] | None = None,
) -> Iterator[Served]:
    """Run ``command`` (which serves the inherited ``sock``, if any) with the app's environment
    and ``env``; the server's own output is kept, and shown when a test fails. Killed with its
    process group if the test left it running."""
    proc = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        env=app_environment(collector, tmp_path, env),
        pass_fds=[] if sock is None else [sock.fileno()],
        start_new_session=True,
    )
    assert proc.stdout is not None
    url = "" if sock is None else "http://{}:{}".format(*sock.getsockname())
    accepted, exited = tmp_path / ACCEPTED, tmp_path / EXITED
    served = Served(proc, url, Output(proc.stdout), accepted, exited)
    try:
        yield served
    finally:
        if proc.poll() is None:  # its workers too: the group is still the server's own
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT)
        if served.log.finished(timeout=STOP_TIMEOUT):
            proc.stdout.close()


def assert_all_stored(
    served: Served, collector: Collector, timeout: float = 10.0, *, exit_hooks: bool = True
) -> None:
    """Every messageId the app accepted is stored, each exactly once, and nothing else is; and
    (``exit_hooks``) every process that accepted one finished its exit hooks: none was killed
    while stopping. A server whose processes die by their stop signal runs no exit hooks."""
    accepted = served.accepted_ids()
    assert accepted, served.output()
    with suppress(AssertionError):  # the comparison below says which are missing
        collector.wait_for(len(accepted), timeout=timeout)
    stored = [m["messageId"] for m in collector.events()]
    missing = set(accepted) - set(stored)
    assert not missing, f"{len(missing)} of {len(accepted)} lost\n{served.output()}"
    assert sorted(stored) == sorted(accepted), served.output()
    if not exit_hooks:
        return
    unfinished = served.accepting_pids() - served.exited_pids()
    assert not unfinished, f"processes {unfinished} did not finish exiting\n{served.output()}"
