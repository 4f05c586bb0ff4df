"""Awaiting the background engine from an event loop without blocking it.

The consumer threads already announce progress: the queue calls its waiters when its last
unfinished message is finished, and a ``Latch`` calls its waiters when a consumer thread ends.
``wait`` turns one such announcement into a future of the running loop, resolved through
``call_soon_threadsafe``: no polling, no thread parked per call, and nothing bound to a loop
beyond the one call, so a client serves successive ``asyncio.run()`` calls and forked children.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Callable, Protocol

Waiter = Callable[[], None]


class Waitable(Protocol):
    def add_waiter(self, waiter: Waiter) -> bool:
        """Arrange one call of ``waiter()`` when the condition holds; False (and no call) if it
        holds already."""

    def remove_waiter(self, waiter: Waiter) -> None: ...


class Latch:
    """A one-way flag whose waiters are called by the thread that opens it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open = False
        self._waiters: list[Waiter] = []

    def open(self) -> None:
        with self._lock:
            self._open = True
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter()

    def add_waiter(self, waiter: Waiter) -> bool:
        with self._lock:
            if self._open:
                return False
            self._waiters.append(waiter)
            return True

    def remove_waiter(self, waiter: Waiter) -> None:
        with self._lock:
            if waiter in self._waiters:
                self._waiters.remove(waiter)


async def wait(source: Waitable, timeout: float | None) -> bool:
    """Until ``source``'s condition holds (True) or ``timeout`` seconds pass (False).

    Cancelling the caller leaves ``source`` as it was: the waiter is removed either way.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def wake() -> None:  # runs on a consumer thread
        # RuntimeError: the loop was closed meanwhile, and nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, future)

    if not source.add_waiter(wake):
        return True
    try:
        done, _ = await asyncio.wait({future}, timeout=timeout)
    finally:
        source.remove_waiter(wake)
    return bool(done)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


__all__ = ["Latch", "Waitable", "wait"]
