"""The module-level globals and proxies, as in ``import segment.analytics as analytics``."""

from __future__ import annotations

import logging

import pytest

import segment_clone as analytics

from .server import ScriptedServer

pytestmark = pytest.mark.usefixtures("fresh_module")


def test_defaults() -> None:
    assert analytics.write_key is None
    assert analytics.host is None
    assert analytics.max_queue_size == 10000
    assert analytics.timeout == 15
    assert analytics.max_retries == 10
    assert analytics.gzip is False
    assert analytics.send is True
    assert analytics.oauth_auth_server == "https://oauth2.segment.io"
    assert analytics.oauth_scope == "tracking_api:write"


def test_default_client_is_built_lazily_from_globals(server: ScriptedServer) -> None:
    analytics.write_key = "k"
    analytics.host = server.url
    analytics.upload_size = 7
    analytics.thread = 2
    analytics.gzip = True
    analytics.timeout = 3
    analytics.proxies = {"https": "http://127.0.0.1:1"}
    analytics.flush()
    client = analytics.default_client
    assert client is not None and client.write_key == "k"
    assert client.consumers is not None and len(client.consumers) == 2
    consumer = client.consumers[0]
    assert (consumer.upload_size, consumer.gzip, consumer.timeout) == (7, True, 3)
    assert consumer.proxies == {"https": "http://127.0.0.1:1"}
    analytics.write_key = "changed"  # ignored until default_client is reset
    analytics.flush()
    assert analytics.default_client is client and client.write_key == "k"


def test_missing_write_key_raises() -> None:
    with pytest.raises(AssertionError, match="write_key"):
        analytics.track("u", "e")


def test_proxies_return_the_client_result(server: ScriptedServer) -> None:
    analytics.write_key = "k"
    analytics.host = server.url
    results = [
        analytics.track("u", "e"),
        analytics.identify("u", {"a": 1}),
        analytics.group("u", "g"),
        analytics.alias("p", "u"),
        analytics.page("u", "c", "n"),
        analytics.screen("u", "c", "n"),
    ]
    assert all(ok for ok, _ in results)
    assert analytics.flush(timeout=10) == 0
    assert server.messages() == [msg for _, msg in results]
    assert analytics.stats()["delivered"] == 6
    assert analytics.shutdown(timeout=10) == 0


def test_log_handler_and_debug_are_applied(server: ScriptedServer) -> None:
    records: list[logging.LogRecord] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("segment")
    handler = Capture()
    level = logger.level
    try:
        analytics.write_key = "k"
        analytics.host = server.url
        analytics.log_handler = handler
        analytics.debug = True
        analytics.track("u", "e")
        analytics.flush(timeout=10)
        assert logger.level == logging.DEBUG
        assert any(r.levelno == logging.DEBUG for r in records)
        before = len(logger.handlers)
        analytics.Client("k", debug=True, log_handler=handler, send=False)
        assert len(logger.handlers) == before  # a second debug client stacks nothing
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
