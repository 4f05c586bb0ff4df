"""The background refresh of flag definitions: one daemon thread per provider.

Stopping only sets an event, so it never waits on a request in flight, and the thread is a
daemon, so it cannot hold the interpreter open. Its owner stops it at interpreter exit and calls
``after_fork()`` in a forked child, which inherits no threads.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

logger = logging.getLogger(__name__)


class Poller:
    """Calls ``refresh`` every ``interval`` seconds on a daemon thread until stopped."""

    def __init__(self, refresh: Callable[[], None], interval: float, name: str) -> None:
        self._refresh = refresh
        self._interval = interval
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stop.is_set()

    def start(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(self._stop,), name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end after ``stop()``, for an orderly shutdown."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self, stop: threading.Event) -> None:
        logger.debug("Polling for flag definitions every %s s", self._interval)
        while not stop.wait(self._interval):
            self._refresh()

    def after_fork(self) -> None:
        """In a forked child: start a thread of its own if the parent's was polling."""
        if self.running:
            self.start()
