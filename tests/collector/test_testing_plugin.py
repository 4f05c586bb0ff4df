"""The ``segment_clone.testing`` fixtures, used the way an application's tests use them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import segment_clone as analytics
from segment_clone.collector import Collector

from ..api import post, track


def test_collector_fixture_is_running_on_a_free_port_with_a_fresh_db(collector: Collector) -> None:
    assert collector.url.startswith("http://127.0.0.1:")
    assert collector.port != 8787
    assert collector.events() == []
    assert (
        post(collector.url, "/v1/batch", {"batch": [track(), track(event="Other")]}).status == 200
    )
    assert len(collector.wait_for(2, timeout=5)) == 2
    assert [m["event"] for m in collector.events(type="track", event="Other")] == ["Other"]


def test_analytics_capture_points_the_module_client_at_the_collector(
    analytics_capture: Collector,
) -> None:
    ok, msg = analytics.track("user-1", "Signed Up", {"plan": "pro"})
    assert ok
    [stored] = analytics_capture.wait_for(1, timeout=10, type="track")
    assert stored == msg
    assert analytics.default_client is not None
    assert analytics.default_client.host == analytics_capture.url


USER_TESTS = """
import segment_clone as analytics


def signup(email):
    analytics.identify(email, {"email": email})
    analytics.track(email, "Signed Up")


def test_signup_is_tracked(analytics_capture):
    signup("ada@example.com")
    analytics.flush()
    assert [m["type"] for m in analytics_capture.events()] == ["identify", "track"]


def test_settings_are_restored_after_capture(collector):
    assert (analytics.write_key, analytics.host, analytics.default_client) == (None, None, None)
    assert collector.events() == []  # a fresh collector for every test


def test_wait_for_fails_with_a_count(collector):
    try:
        collector.wait_for(1, timeout=0.05)
    except AssertionError as e:
        assert str(e) == "expected 1 events, got 0"
    else:
        raise AssertionError("wait_for did not time out")
"""


def test_the_plugin_is_registered_by_its_entry_point(tmp_path: Path) -> None:
    (tmp_path / "test_user_app.py").write_text(USER_TESTS)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
