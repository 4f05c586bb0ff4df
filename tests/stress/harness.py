"""The stress harness: scenarios in a subprocess, checked by accounting.

A scenario is a script body run under a 1 µs switch interval (``sys.setswitchinterval``), to
shake out interleavings. The preamble gives it ``record(result)`` for every call's result and
an ``on_error`` that records reports; an exit handler registered before ``segment_clone`` is
imported (so it runs after the SDK's exit flush) stops the scenario's ``threads`` and prints
what was accepted and what was reported. Every process that exits normally prints its own line,
so a scenario that forks is accounted for per process.

The check: every message a call accepted is stored by the server or was reported, and the
script ended (each scenario bounds its loops, and ``run`` bounds the process).
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass, field

from ..processes import run_script
from ..server import ScriptedServer

PREAMBLE = """
import atexit, json, os, sys, threading
sys.setswitchinterval(1e-6)
accepted, reported, threads = [], [], []
stop = threading.Event()

def record(result):
    ok, msg = result
    if ok:
        accepted.append(msg["messageId"])
    return ok

def on_error(exc, batch):
    reported.extend(m["messageId"] for m in batch)

def account():
    stop.set()
    for t in threads:
        t.join(10)
    print(json.dumps({"pid": os.getpid(), "accepted": accepted, "reported": reported}))

atexit.register(account)
import segment_clone
"""

TRACK_THROUGH_EXIT = """
def work():
    for i in range(20_000):
        if stop.is_set():
            return
        record(client.track("u", "e", {"i": i}))

threads.extend(threading.Thread(target=work, daemon=True) for _ in range(3))
for t in threads:
    t.start()
while len(accepted) < 300:
    pass
"""
"""Three daemon threads tracking with ``client`` while the main thread exits once 300 calls
were accepted: the scenario of messages accepted around exit."""


@dataclass
class Accounting:
    accepted: set[str] = field(default_factory=set)
    reported: set[str] = field(default_factory=set)
    processes: int = 0


def run(server: ScriptedServer, body: str, timeout: float = 60) -> Accounting:
    """Run a scenario against ``server`` (its URL is ``sys.argv[1]``); fail if it fails, hangs
    or lost a message."""
    result = run_script(PREAMBLE + textwrap.dedent(body), server.url, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    totals = Accounting()
    for line in result.stdout.splitlines():
        if line.startswith('{"pid"'):
            process = json.loads(line)
            totals.accepted |= set(process["accepted"])
            totals.reported |= set(process["reported"])
            totals.processes += 1
    stored = {m["messageId"] for m in server.messages()}
    lost = totals.accepted - stored - totals.reported
    assert not lost, f"{len(lost)} of {len(totals.accepted)} accepted messages lost"
    return totals
