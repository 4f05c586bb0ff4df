"""pytest fixtures for applications that use segment_clone (a ``pytest11`` plugin).

Installed with the package; nothing to configure::

    def test_signup_is_tracked(analytics_capture):
        signup("ada@example.com")               # calls segment_clone.track(...)
        [event] = analytics_capture.wait_for(1, type="track")
        assert event["event"] == "Signed Up"

``collector`` is a running local collector (``.url``, ``.events(type=...)``,
``.wait_for(n, timeout)``, ``.stats()``, ``.faults``) with a temporary database.
``analytics_capture`` also points ``segment_clone.default_client`` at it, and flushes and
restores the previous module settings at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import segment_clone

from .collector import Collector

TEST_WRITE_KEY = "test-write-key"
CAPTURE_UPLOAD_INTERVAL = 0.05
"""Partial batches are sent after 50 ms instead of 500, so ``wait_for`` returns quickly."""
_SETTINGS = ("write_key", "host", "send", "sync_mode", "upload_interval", "default_client")


@pytest.fixture
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    """A collector on a free loopback port, with a fresh database; closed after the test."""
    db = tmp_path_factory.mktemp("segment-clone") / "events.db"
    with Collector(db, port=0).start() as running:
        yield running


@pytest.fixture
def analytics_capture(collector: Collector) -> Iterator[Collector]:
    """The ``collector``, with the module-level client (``segment_clone.track`` etc.) sending
    to it; at teardown the client is flushed and shut down and the settings restored."""
    saved = {name: getattr(segment_clone, name) for name in _SETTINGS}
    segment_clone.write_key = TEST_WRITE_KEY
    segment_clone.host = collector.url
    segment_clone.send = True
    segment_clone.sync_mode = False
    segment_clone.upload_interval = CAPTURE_UPLOAD_INTERVAL
    segment_clone.default_client = None
    try:
        yield collector
    finally:
        client = segment_clone.default_client
        if client is not None:
            client.shutdown(timeout=10)
        for name, value in saved.items():
            setattr(segment_clone, name, value)
