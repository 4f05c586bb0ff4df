"""A keep-alive connection to the sink's ``/count`` and ``/reset``: how a run knows that every
event it tracked has been acknowledged. Standard library only (it runs in peers' virtualenvs)."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

SINK_TIMEOUT = 300.0


class SinkClient:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)

    def _call(self, method: str, path: str) -> dict[str, int]:
        self.conn.request(method, path)
        return json.loads(self.conn.getresponse().read())  # type: ignore[no-any-return]

    def reset(self) -> None:
        self._call("POST", "/reset")

    def count(self) -> dict[str, int]:
        return self._call("GET", "/count")

    def wait_for(self, events: int, timeout: float = SINK_TIMEOUT) -> dict[str, int]:
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
