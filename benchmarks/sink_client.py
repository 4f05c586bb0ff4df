"""A keep-alive connection to the sink's ``/count`` and ``/reset``: how a run knows that every
event it tracked has been acknowledged. Standard library only (it runs in peers' virtualenvs)."""

from __future__ import annotations

import http.client
import json
import time
from typing import Any
from urllib.parse import urlsplit

SINK_TIMEOUT = 300.0


class SinkClient:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)

    def _call(self, method: str, path: str) -> dict[str, Any]:
        self.conn.request(method, path)
        return json.loads(self.conn.getresponse().read())  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._call("POST", "/reset")

    def count(self) -> dict[str, Any]:
        return self._call("GET", "/count")

    def wait_for(self, events: int, timeout: float = SINK_TIMEOUT) -> dict[str, Any]:
        """Poll until the sink has acknowledged ``events`` events (or raise)."""
        deadline = time.monotonic() + timeout
        while True:
            counts = self.count()
            if counts["events"] >= events or time.monotonic() > deadline:
                break
            time.sleep(0.002)
        if counts["events"] != events:
            raise RuntimeError(f"sink counted {counts['events']} events, expected {events}")
        return counts

    def wait_each(
        self, events: int, paths: tuple[str, ...], timeout: float = SINK_TIMEOUT
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Poll until each of ``paths`` has acknowledged ``events`` events (or raise); return
        when each got there (``time.perf_counter()``) and the last counts."""
        deadline = time.monotonic() + timeout
        done: dict[str, float] = {}
        while True:
            counts = self.count()
            now = time.perf_counter()
            for path in paths:
                if path not in done and counts["paths"].get(path, 0) >= events:
                    done[path] = now
            if len(done) == len(paths) or time.monotonic() > deadline:
                break
            time.sleep(0.002)
        short = {p: counts["paths"].get(p, 0) for p in paths if counts["paths"].get(p) != events}
        if short:
            raise RuntimeError(f"sink counted {short} events, expected {events} on each path")
        return done, counts
