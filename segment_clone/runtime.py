"""What a client must not share across a fork: one object per process, swapped whole.

A forked child inherits copies of its parent's queue, locks, counters and threads (the threads
themselves do not exist in the child, but a lock one of them held stays held). So a client keeps
all of it in one ``Runtime`` and replaces it with a single assignment when it finds itself in a
new process: a thread that read the old one works on a consistent old one, and every reader of
the new one sees it complete. The PID check (``Runtime.pid``) catches forks that skip Python's
fork hooks, as under uWSGI; the new runtime is built under a lock made for the new process,
never under one inherited from the parent.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .consumer import Consumer
    from .message_queue import MessageQueue
    from .stats import DropReporter, Stats
    from .uploader import Uploader

_process_locks: dict[int, threading.RLock] = {}
"""One lock per process ID, made by the first thread of that process to need it
(``dict.setdefault`` is atomic); owner: the process of that ID."""


def process_lock(pid: int) -> threading.RLock:
    """The lock that serialises adopting process ``pid``: new in each process, so never one
    a parent's thread held at the fork."""
    return _process_locks.setdefault(pid, threading.RLock())


class Runtime:
    """The per-process state of one client. Owner: the process whose ID is ``pid``. Fields
    marked ``lock`` are written under ``lock`` and may be read without it; the queue, stats and
    reporter guard themselves."""

    def __init__(self, queue: MessageQueue, stats: Stats, reporter: DropReporter) -> None:
        self.pid = os.getpid()
        self.queue = queue
        self.stats = stats
        self.reporter = reporter
        self.lock = threading.RLock()  # re-entrant: a signal handler may enlist inside join()
        self.consumers: list[Consumer] | None = None
        """lock. None in ``sync_mode``, which sends on the caller's thread."""
        self.retired: list[Consumer] = []
        """lock. Consumers replaced while still in a request: the exit hook waits for their
        batches and settles them."""
        self.sync_sender: Uploader | None = None
        """``sync_mode``'s sender, shared by the caller threads (its rate-limit state guards
        itself)."""
        self.enlisted = False
        """lock. In the lifecycle registry with consumers started (or paused by ``join()``);
        a call that finds it False enlists again, and reads it again after its put."""
        self.paused = False
        """lock. ``join()`` stopped the consumers: calls queue without restarting them."""
        self.closed = False
        """lock. Set by the exit hook before its last sweep: later calls are reported."""
