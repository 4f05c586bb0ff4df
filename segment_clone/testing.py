"""pytest fixtures for applications that use segment_clone (a ``pytest11`` plugin).

Installed with the package; nothing to configure:

    def test_signup_is_tracked(analytics_capture):
        signup("ada@example.com")               # calls segment_clone.track(...)
        [event] = analytics_capture.wait_for(1, type="track")
        assert event["event"] == "Signed Up"
        analytics_capture.assert_no_violations()

``collector`` is a running local collector (``.url``, ``.events(type=...)``,
``.wait_for(n, timeout)``, ``.violations()``, ``.stats()``, ``.faults``) with a temporary
database. ``analytics_capture`` also points ``segment_clone.default_client`` at it, and flushes
and restores the previous module settings at teardown.

``mixpanel_flags`` serves Mixpanel feature-flag definitions from that collector: ``set(...)``
or ``set_value(key, value)`` them, build the Mixpanel flag configs from ``local_config()`` or
``remote_config()``, and read the exposures the SDK sent with ``exposures()``.

With a tracking plan (``--segment-clone-plan PLAN.json``, or the ``segment_clone_plan`` ini
key, a path relative to the ini file) the collector checks every message against it; override
the ``segment_clone_plan`` fixture to choose a plan in code.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import segment_clone

from .collector import Collector
from .collector.plan import Plan, PlanError, load_plan
from .destinations import Mixpanel, Segment
from .mixpanel.flags.types import LocalFlagsConfig, RemoteFlagsConfig
from .mixpanel.flags.utils import EXPOSURE_EVENT

TEST_WRITE_KEY = "test-write-key"
CAPTURE_UPLOAD_INTERVAL = 0.05
"""Partial batches are sent after 50 ms instead of 500, so ``wait_for`` returns quickly."""
_SETTINGS = (
    "write_key",
    "host",
    "send",
    "sync_mode",
    "upload_interval",
    "default_client",
    "destinations",
)
PLAN_HELP = "tracking plan that the collector fixture checks every message against"
_PLAN = pytest.StashKey[Plan]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("segment_clone").addoption(
        "--segment-clone-plan", metavar="PLAN_JSON", help=PLAN_HELP
    )
    parser.addini("segment_clone_plan", f"{PLAN_HELP} (relative to the ini file)", default="")


def pytest_configure(config: pytest.Config) -> None:
    """Compile the plan once, before any test runs: a plan that cannot be used stops the run."""
    path: str | Path | None = config.getoption("segment_clone_plan")
    if not path:
        ini: str = config.getini("segment_clone_plan")
        if not ini:
            return
        path = (config.inipath.parent if config.inipath else config.rootpath) / ini
    try:
        config.stash[_PLAN] = load_plan(path)
    except PlanError as e:
        raise pytest.UsageError(f"segment_clone: {e}") from None


@pytest.fixture(scope="session")
def segment_clone_plan(pytestconfig: pytest.Config) -> Plan | None:
    """The tracking plan the options name; None without one. Override it to choose in code."""
    return pytestconfig.stash.get(_PLAN, None)


@pytest.fixture
def collector(
    tmp_path_factory: pytest.TempPathFactory, segment_clone_plan: Plan | None
) -> Iterator[Collector]:
    """A collector on a free loopback port, with a fresh database; closed after the test."""
    db = tmp_path_factory.mktemp("segment-clone") / "events.db"
    with Collector(db, port=0, plan=segment_clone_plan).start() as running:
        yield running


class AnalyticsCapture:
    """The ``collector`` seen from the module-level client: the collector's attributes, with
    checks that flush the client first, so that everything it was given has arrived."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def __getattr__(self, name: str) -> Any:
        return getattr(self.collector, name)

    def violations(self, **filters: Any) -> list[dict[str, Any]]:
        _flush()
        return self.collector.violations(**filters)

    def assert_no_violations(self, **filters: Any) -> None:
        """Fail the test, listing every tracking-plan violation, if there is any."""
        __tracebackhide__ = True
        _flush()
        self.collector.assert_no_violations(**filters)


@pytest.fixture
def analytics_capture(collector: Collector) -> Iterator[AnalyticsCapture]:
    """The ``collector``, with the module-level client (``segment_clone.track`` etc.) sending
    to it; at teardown the client is flushed and shut down and the settings restored."""
    saved = {name: getattr(segment_clone, name) for name in _SETTINGS}
    chosen = segment_clone._chosen_destinations()
    if chosen:  # each destination the application set, delivered to the collector instead
        with_key = segment_clone.write_key is not None  # a Segment source in front of them
        segment_clone.write_key = TEST_WRITE_KEY if with_key else None
        segment_clone.host = collector.url if with_key else None
        redirected = [
            d.at(collector.url)
            if isinstance(d, Mixpanel)
            else Segment(TEST_WRITE_KEY, host=collector.url)
            for d in chosen
        ]
        setattr(segment_clone, "destinations", redirected)  # noqa: B010 (the name is a package)
    else:
        segment_clone.write_key = TEST_WRITE_KEY
        segment_clone.host = collector.url
    segment_clone.send = True
    segment_clone.sync_mode = False
    segment_clone.upload_interval = CAPTURE_UPLOAD_INTERVAL
    segment_clone.default_client = None
    try:
        yield AnalyticsCapture(collector)
    finally:
        client = segment_clone.default_client
        if client is not None:
            client.shutdown(timeout=10)
        for name, value in saved.items():
            setattr(segment_clone, name, value)


class MixpanelFlags:
    """Feature-flag definitions served by the ``collector`` for one test (none at first)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.api_host = collector.url
        """What ``LocalFlagsConfig``/``RemoteFlagsConfig`` and the consumer take as ``api_host``."""

    def set(self, *flags: dict[str, Any]) -> None:
        """Serve exactly these definitions, in the JSON shape of Mixpanel's definitions API."""
        self.collector.flags.replace(list(flags))

    def set_value(self, key: str, value: Any, context: str = "distinct_id") -> dict[str, Any]:
        """Serve (alongside the others) a flag that gives every context ``value``: one variant,
        ``"on"``, for everyone. Returns its definition."""
        definition = {
            "id": key,
            "name": key,
            "key": key,
            "status": "active",
            "project_id": 0,
            "context": context,
            "ruleset": {
                "variants": [{"key": "on", "value": value, "is_control": False, "split": 1.0}],
                "rollout": [{"rollout_percentage": 1.0}],
            },
        }
        others = [f for f in self.collector.flags.document()["flags"] if f.get("key") != key]
        self.set(*others, definition)
        return definition

    def local_config(self, **options: Any) -> LocalFlagsConfig:
        """A ``LocalFlagsConfig`` pointed at the collector, polling off unless asked for."""
        return LocalFlagsConfig(**{"api_host": self.api_host, "enable_polling": False, **options})

    def remote_config(self, **options: Any) -> RemoteFlagsConfig:
        """A ``RemoteFlagsConfig`` pointed at the collector."""
        return RemoteFlagsConfig(**{"api_host": self.api_host, **options})

    def exposures(self, count: int = 0, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The ``$experiment_started`` events stored, after waiting for at least ``count``."""
        if count:
            return self.collector.wait_for(count, timeout, event=EXPOSURE_EVENT)
        return self.collector.events(event=EXPOSURE_EVENT)


@pytest.fixture
def mixpanel_flags(collector: Collector) -> MixpanelFlags:
    """Mixpanel feature flags served by the ``collector``, set per test."""
    return MixpanelFlags(collector)


def _flush() -> None:
    client = segment_clone.default_client
    if client is not None:
        client.flush()
