"""The ``segment_clone.testing`` fixtures, used the way an application's tests use them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import segment_clone as analytics
from segment_clone.collector import Collector
from segment_clone.destinations import Mixpanel, Segment

from ..api import post, track
from .plans import write_plan


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


def test_analytics_capture_redirects_the_applications_destinations(
    request: pytest.FixtureRequest, fresh_module: None
) -> None:
    """An application that set ``analytics.destinations`` (here to hosts nothing listens on)
    has both sides captured by the collector: nothing leaves for the real services."""
    analytics.destinations = [  # type: ignore[attr-defined]
        Segment("live-key", host="https://127.0.0.1:9"),
        Mixpanel("tok", api_host="https://127.0.0.1:9"),
    ]
    capture = request.getfixturevalue("analytics_capture")
    analytics.track("user-1", "Signed Up")
    analytics.flush()
    assert len(capture.wait_for(1, timeout=10, source="segment")) == 1
    [record] = capture.wait_for(1, timeout=10, source="mixpanel")
    assert record["properties"]["token"] == "tok"


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


PLANNED_TESTS = """
import segment_clone as analytics


def test_a_planned_event_passes(analytics_capture):
    analytics.track("ada", "Signed Up", {"plan": "pro"})
    analytics_capture.assert_no_violations()
    assert analytics_capture.stats()["total"] == 1


def test_an_unplanned_property_fails_with_the_list(analytics_capture):
    analytics.track("ada", "Signed Up", {"plan": "gold"})
    analytics.identify("ada", {"email": "not an address"})
    analytics_capture.assert_no_violations()


def test_the_collector_fixture_lists_violations(collector):
    import json, urllib.request
    body = json.dumps({"batch": [{"type": "track", "userId": "u", "event": "Nope"}]}).encode()
    request = urllib.request.Request(collector.url + "/v1/batch", body,
                                     {"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()
    assert [(v["event"], v["type"]) for v in collector.violations()] == [("Nope", "unplanned")]
"""


def run_user_tests(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (folder / "test_user_app.py").write_text(PLANNED_TESTS)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args, str(folder)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_plan_given_on_the_command_line_checks_what_the_app_sends(tmp_path: Path) -> None:
    plan = write_plan(tmp_path, "segment", "tracking-plan.json")
    result = run_user_tests(tmp_path, "--segment-clone-plan", str(plan))
    assert "1 failed, 2 passed" in result.stdout, result.stdout + result.stderr
    failure = result.stdout[result.stdout.index("test_an_unplanned_property_fails") :]
    assert "2 tracking-plan violation(s)" in failure
    assert 'Signed Up: properties.plan must be one of "free", "pro" (enum)' in failure
    assert "identify: traits.email must be a valid email (format)" in failure


def test_a_plan_in_the_ini_file_is_found_next_to_it(tmp_path: Path) -> None:
    write_plan(tmp_path, "compact", "plan.json")
    (tmp_path / "pytest.ini").write_text("[pytest]\nsegment_clone_plan = plan.json\n")
    sub = tmp_path / "sub"
    sub.mkdir()
    result = run_user_tests(sub, "--rootdir", str(tmp_path), "-c", str(tmp_path / "pytest.ini"))
    assert "1 failed, 2 passed" in result.stdout, result.stdout + result.stderr


def test_without_a_plan_nothing_is_flagged_and_a_bad_plan_stops_the_run(tmp_path: Path) -> None:
    result = run_user_tests(tmp_path)
    assert "1 failed, 2 passed" in result.stdout  # only the test that expects a violation
    assert "tracking-plan violation" not in result.stdout
    missing = run_user_tests(tmp_path, "--segment-clone-plan", str(tmp_path / "none.json"))
    assert missing.returncode == 4  # pytest's usage error
    assert "segment_clone: cannot read the plan" in missing.stderr
