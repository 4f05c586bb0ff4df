"""A ticker task: the witness that an event loop was never blocked."""

from __future__ import annotations

import asyncio
import time

TICK = 0.001
LONGEST_GAP = 0.2
"""The ticker's bound. A wait that blocked the loop would stall it for a whole server answer
(1 s in the ticker tests), and the ticker would not tick during the flush at all. A loop that
is not blocked ticks every 1-10 ms on this 2-core machine, but the scheduler alone stalled it
for 110 ms once while another test suite shared the CPU: 200 ms keeps the check honest, not
flaky."""


class Ticker:
    """A task in the loop under test, recording the longest gap between its ticks."""

    def __init__(self) -> None:
        self.ticks = 0
        self.longest = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(TICK)
            now = time.perf_counter()
            self.longest = max(self.longest, now - last)
            self.ticks += 1
            last = now

    def stop(self) -> None:
        assert self._task is not None
        self._task.cancel()
