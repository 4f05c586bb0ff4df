"""The debugger page (and the flag endpoints, from a page) in a real Chromium, driven by
Playwright, against a real collector.

Chromium is the system's (``apt-get install -y chromium``; Playwright's own download is not
reachable here). Without it these tests are skipped, except under CI (``CI=true``), where they
fail. One browser serves the module; each test gets a fresh context (no shared storage), and
fails if the page logged an error (a Content-Security-Policy refusal is one) or opened a dialog.
Waiting is Playwright's: ``expect`` retries until the page shows what is expected.

``SEGMENT_CLONE_SCREENSHOT=docs/assets/debugger.png`` makes the screenshot test write the picture
the documentation shows (docs/collector.md).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

import pytest

from segment_clone.collector import Collector, Faults, FaultSettings
from segment_clone.collector.plan import parse_plan
from segment_clone.mixpanel import Consumer, LocalFlagsConfig, Mixpanel

from ..api import post
from ..flags.conftest import flag
from ..server import Reply, ScriptedServer
from .both_sides import deliver_both, deliver_mixpanel, message
from .plans import COMPACT, GOOD_ORDER, mixpanel_event, segment_track


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


try:
    from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright
except ImportError:  # the dev extra installs it
    if in_ci():
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = "<img src=x onerror=alert(1)>"
DASH = "\u2013"  # the page writes ranges with an en dash
MakeCollector = Callable[..., Collector]
HTML = {"Content-Type": "text/html"}
FLAG = flag("dark_mode", variants=[{"key": "on", "value": True, "is_control": False, "split": 1.0}])


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        reason = "no system Chromium: apt-get install -y chromium"
        if in_ci():
            pytest.fail(reason + " (CI must run the browser tests)")
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium()
    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        expect.set_options(timeout=10_000)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, make_collector: MakeCollector) -> Iterator[Page]:
    """A fresh page; after the test, no error logged and no dialog opened (set up after
    ``make_collector``, so closed before the collectors are)."""
    context = browser.new_context(viewport={"width": 1400, "height": 820})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    opened.on(
        "dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss())
    )
    yield opened
    context.close()
    assert problems == []


def open_debugger(page: Page, collector: Collector, query: str = "") -> None:
    page.goto(f"{collector.url}/{query}")
    expect(page.locator("#range")).not_to_be_empty()  # the first list has been shown


def rows(page: Page) -> Locator:
    return page.locator("#rows tr td:first-child")


def send(collector: Collector, *messages: dict[str, Any]) -> None:
    assert post(collector.url, "/v1/batch", {"batch": list(messages)}).status == 200


def track(event: str, message_id: str, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "userId": "ada", "event": event, "messageId": message_id, **fields}


def test_new_events_appear_newest_first_without_a_reload(
    make_collector: MakeCollector, page: Page
) -> None:
    collector = make_collector()
    open_debugger(page, collector)
    expect(page.locator("#range")).to_have_text("no events match")
    page.evaluate("window.notReloaded = true")
    send(collector, track("First", "1"), track("Second", "2"))
    expect(rows(page)).to_have_text(["2", "1"])
    send(collector, track("Third", "3"))
    expect(rows(page)).to_have_text(["3", "2", "1"])
    expect(page.locator("#rows tr").first.locator("td.name")).to_have_text("Third")
    expect(page.locator("#total")).to_have_text("3")
    assert page.evaluate("window.notReloaded") is True


def test_pause_freezes_the_list_and_counts_what_arrives(
    make_collector: MakeCollector, page: Page
) -> None:
    collector = make_collector()
    send(collector, track("A", "1"), track("B", "2"))
    open_debugger(page, collector)
    pause = page.locator("#pause")
    expect(pause).to_have_text("Pause")
    pause.click()
    expect(pause).to_have_text("Resume")
    send(collector, track("C", "3"), track("D", "4"))
    send(collector, track("E", "5"))
    expect(page.locator("#new-count")).to_have_text("3 new")
    expect(page.locator("#total")).to_have_text("5")
    expect(rows(page)).to_have_text(["2", "1"])
    pause.click()
    expect(pause).to_have_text("Pause")
    expect(rows(page)).to_have_text(["5", "4", "3", "2", "1"])
    expect(page.locator("#new-count")).to_have_text("")


def seed_mixed(collector: Collector) -> None:
    send(
        collector,
        track("Signed Up", "s1", properties={"plan": "pro"}),
        {"type": "identify", "anonymousId": "anon-7", "traits": {"note": "a needle here"},
         "messageId": "s2"},
        track("Signed Up", "s3", userId="bob", properties={"plan": "gold"}),
    )  # fmt: skip
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = "data=" + json.dumps(mixpanel_event("Signed Up", {"plan": "free"}, "m1"))
    assert post(collector.url, "/track", body.encode(), headers=form).status == 200


FILTER_CASES = [
    ("q", "needle", ["2"]),
    ("type", "identify", ["2"]),
    ("event", "Signed Up", ["4", "3", "1"]),
    ("user", "anon-7", ["2"]),
    ("source", "mixpanel", ["4"]),
    ("valid", "false", ["3", "2"]),
]


@pytest.mark.parametrize(("name", "value", "expected"), FILTER_CASES)
def test_each_filter_lives_in_the_url_and_survives_a_reload(
    make_collector: MakeCollector, page: Page, name: str, value: str, expected: list[str]
) -> None:
    collector = make_collector(plan=parse_plan({**COMPACT, "allow_unplanned": False}))
    seed_mixed(collector)
    open_debugger(page, collector, "?" + urlencode({name: value}))
    expect(rows(page)).to_have_text(expected)
    field = page.locator(f"#filters [name={name}]")
    expect(field).to_have_value(value)
    page.reload()
    expect(rows(page)).to_have_text(expected)
    expect(field).to_have_value(value)
    # and the other way round: set through the form, it is written to the URL
    page.goto(collector.url + "/")
    expect(rows(page)).to_have_text(["4", "3", "2", "1"])
    if name in ("source", "valid"):
        field.select_option(value)
    else:
        field.fill(value)
    expect(page).to_have_url(f"{collector.url}/?{urlencode({name: value})}")
    expect(rows(page)).to_have_text(expected)
    page.reload()
    expect(rows(page)).to_have_text(expected)
    page.locator("#clear").click()
    expect(page).to_have_url(collector.url + "/")
    expect(rows(page)).to_have_text(["4", "3", "2", "1"])


def test_raw_pretty_and_delivery_of_an_event(make_collector: MakeCollector, page: Page) -> None:
    collector = make_collector()
    message = track(
        "Order Completed", "o1", properties={"total": 49.9, "items": [{"sku": "é-1"}], "n": None}
    )
    assert post(collector.url, "/v1/batch", {"batch": [message]}, gzip=True).status == 200
    send(collector, message)  # a duplicate
    open_debugger(page, collector)
    page.locator("#rows tr").first.click()
    raw = page.locator("#tab-raw")
    expect(raw).to_be_visible()
    assert json.loads(raw.inner_text()) == message
    page.get_by_role("tab", name="Pretty").click()
    pretty = page.locator("#tab-pretty")
    expect(pretty).to_be_visible()
    assert pretty.text_content() == (
        "analytics.track(\n"
        '    "ada",\n'
        '    "Order Completed",\n'
        '    {"total": 49.9, "items": [{"sku": "é-1"}], "n": None},\n'
        ")"
    )
    page.get_by_role("tab", name="Delivery").click()
    delivery = page.locator("#tab-delivery")
    for text in ("/v1/batch", "status answered200", "gzipyes", "batch size1", "duplicate hits1"):
        expect(delivery).to_contain_text(text)
    expect(raw).to_be_hidden()


def test_a_violation_is_shown_for_an_invalid_event(
    make_collector: MakeCollector, page: Page
) -> None:
    collector = make_collector(plan=parse_plan(COMPACT))
    send(
        collector,
        segment_track("Order Completed", GOOD_ORDER, "ok"),
        segment_track("Order Completed", {**GOOD_ORDER, "currency": "GBP"}, "bad"),
    )
    open_debugger(page, collector)
    statuses = page.locator("#rows td.status")
    expect(statuses).to_have_text(["✗ 1 violation", "✓"])
    expect(page.locator("#invalid")).to_have_text("1")
    expect(page.locator("#plan")).to_have_text("tracking plan: plan · 4 rules · flag mode")
    page.locator("#rows tr").first.click()
    page.get_by_role("tab", name="Violations").click()
    expect(page.locator("#tab-violations li")).to_have_text(
        ['enum properties.currency: properties.currency must be one of "EUR", "USD"']
    )
    page.locator("#rows tr").nth(1).click()
    expect(page.locator("#tab-violations li")).to_have_text(["No violations."])


def test_hostile_names_are_shown_as_text(make_collector: MakeCollector, page: Page) -> None:
    collector = make_collector()
    evil = track(HOSTILE, "x1", userId="<b>mallory</b>", properties={"<i>k</i>": "<script>1"})
    send(collector, evil)
    open_debugger(page, collector)
    row = page.locator("#rows tr").first
    expect(row.locator("td.name")).to_have_text(HOSTILE)
    expect(row.locator("td.user")).to_have_text("<b>mallory</b>")
    row.click()
    expect(page.locator("#detail-title")).to_have_text(f"#1 segment track {HOSTILE}")
    page.get_by_role("tab", name="Pretty").click()
    expect(page.locator("#tab-pretty")).to_contain_text(HOSTILE)
    assert page.locator("img, b, i, #rows script").count() == 0
    assert json.loads(page.locator("#tab-raw").text_content()) == evil


def test_a_mixpanel_record_opens_its_segment_message_and_back(
    make_collector: MakeCollector, page: Page
) -> None:
    collector = make_collector()
    deliver_both(collector, message("track", "order 7/try 1", event=HOSTILE))  # digest form
    deliver_mixpanel(collector, "track", mixpanel_event("Clicked", {}, "no-twin"))
    open_debugger(page, collector)
    expect(rows(page)).to_have_text(["3", "2", "1"])
    links = page.locator("#detail-links")
    page.locator('#rows tr[data-id="3"]').click()
    expect(page.locator("#detail-title")).to_have_text("#3 mixpanel track Clicked")
    expect(links).to_be_hidden()
    page.locator('#rows tr[data-id="2"]').click()
    expect(links).to_have_text(f"Made from Segment message #1 segment track {HOSTILE}")
    links.get_by_role("link").click()
    expect(page.locator("#detail-title")).to_have_text(f"#1 segment track {HOSTILE}")
    expect(page.locator('#rows tr[data-id="1"]')).to_have_class("selected")
    expect(links).to_have_text(f"Sent to Mixpanel as #2 mixpanel import {HOSTILE}")
    links.get_by_role("link").click()
    expect(page.locator("#detail-title")).to_have_text(f"#2 mixpanel import {HOSTILE}")
    assert page.locator("img").count() == 0


def test_the_header_counts_sources_duplicates_rejections_and_faults(
    make_collector: MakeCollector, page: Page
) -> None:
    collector = make_collector(faults=Faults(FaultSettings(fail_rate=1.0)))
    open_debugger(page, collector)
    assert post(collector.url, "/v1/batch", {"batch": [track("E", "1")]}).status == 503
    collector.faults.update({"fail_rate": 0})
    send(collector, track("E", "1"), track("E", "1"), {"type": "page", "userId": "u", "name": "P"})
    assert post(collector.url, "/v1/batch", b"{").status == 400
    expect(page.locator("#by-source")).to_have_text("segment 2 (page 1, track 1)")
    expect(page.locator("#duplicates")).to_have_text("1")
    expect(page.locator("#rejected")).to_have_text("400: 1 · 401: 0 · 413: 0")
    expect(page.locator("#faults")).to_have_text("1")
    bars = page.locator("#chart rect")
    expect(bars).to_have_count(60)
    heights = bars.evaluate_all("bars => bars.map(b => Number(b.getAttribute('height')))")
    assert max(heights) > 0


def test_every_event_is_reachable_a_page_at_a_time(
    make_collector: MakeCollector, page: Page
) -> None:
    collector = make_collector()
    send(collector, *[track("E", str(i)) for i in range(1, 121)])
    open_debugger(page, collector)
    first_ids = lambda ids: [str(i) for i in ids]  # noqa: E731
    expect(rows(page)).to_have_text(first_ids(range(120, 70, -1)))
    expect(page.locator("#range")).to_have_text(f"1{DASH}50 of 120, newest first")
    page.locator("#older").click()
    expect(rows(page)).to_have_text(first_ids(range(70, 20, -1)))
    expect(page.locator("#range")).to_have_text(f"51{DASH}100 of 120, newest first")
    page.locator("#older").click()
    expect(rows(page)).to_have_text(first_ids(range(20, 0, -1)))
    page.locator("#newer").click()
    expect(rows(page)).to_have_text(first_ids(range(70, 20, -1)))
    page.locator("#oldest").click()
    expect(rows(page)).to_have_text(first_ids(range(50, 0, -1)))
    expect(page.locator("#range")).to_have_text(f"71{DASH}120 of 120, newest first")
    page.locator("#newest").click()
    expect(rows(page)).to_have_text(first_ids(range(120, 70, -1)))


def test_screenshot_for_the_readme(
    make_collector: MakeCollector, page: Page, tmp_path: Path
) -> None:
    collector = make_collector(plan=parse_plan(COMPACT))
    send(
        collector,
        {"type": "identify", "userId": "ada", "traits": {"email": "ada@example.com", "age": 36}},
        segment_track("Signed Up", {"plan": "pro"}, "s1"),
        segment_track("Order Completed", GOOD_ORDER, "o1"),
        segment_track("Order Completed", {**GOOD_ORDER, "currency": "GBP", "coupon": "X"}, "o2"),
        {"type": "page", "userId": "ada", "name": "Pricing", "properties": {"path": "/pricing"}},
        segment_track("Order Refunded", {"order_id": "o-1"}, "r1"),
    )
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    body = "data=" + json.dumps(mixpanel_event("Signed Up", {"plan": "free"}, "m1"))
    assert post(collector.url, "/track", body.encode(), headers=form).status == 200
    send(collector, segment_track("Signed Up", {"plan": "pro"}, "s1"))  # a duplicate
    open_debugger(page, collector)
    page.locator("#rows tr", has_text="GBP").click()
    page.get_by_role("tab", name="Violations").click()
    expect(page.locator("#tab-violations li")).to_have_count(2)
    target = Path(os.environ.get("SEGMENT_CLONE_SCREENSHOT") or tmp_path / "debugger.png")
    page.set_viewport_size({"width": 1400, "height": 480})
    page.screenshot(path=str(target))
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flags_reach_a_web_page_and_exposures_show_in_the_debugger(
    make_collector: MakeCollector, page: Page, server: ScriptedServer
) -> None:
    """A web app's page (another origin) reads the flag endpoints, as mixpanel-js would (CORS);
    an exposure the Python SDK sent is listed and shown as the ``mp.track`` call that made it."""
    collector = make_collector(flags=[FLAG])
    server.default = Reply(body="<!doctype html><title>app</title>", headers=HTML)
    page.goto(server.url)
    answer = page.evaluate(
        """async (url) => {
            const definitions = await (await fetch(url + "/flags/definitions?token=t")).json();
            const context = encodeURIComponent(JSON.stringify({distinct_id: "ada"}));
            const flags = await (await fetch(url + "/flags?token=t&context=" + context)).json();
            return [definitions.flags.map(f => f.key), flags.flags];
        }""",
        collector.url,
    )
    assert answer[0] == ["dark_mode"]
    assert answer[1]["dark_mode"]["variant_value"] is True

    def application() -> None:  # on a thread of its own: Playwright runs a loop on this one
        config = LocalFlagsConfig(api_host=collector.url, enable_polling=False)
        mp = Mixpanel("t", consumer=Consumer(api_host=collector.url), local_flags_config=config)
        with mp:
            mp.local_flags.start_polling_for_definitions()
            enabled.append(mp.local_flags.is_enabled("dark_mode", {"distinct_id": "ada"}))

    enabled: list[bool] = []
    thread = threading.Thread(target=application)
    thread.start()
    thread.join(30)
    assert enabled == [True]
    open_debugger(page, collector)
    expect(page.locator("#rows tr").first.locator("td.name")).to_have_text("$experiment_started")
    page.locator("#rows tr").first.click()
    page.get_by_role("tab", name="Pretty").click()
    pretty = page.locator("#tab-pretty")
    expect(pretty).to_contain_text('mp.track(\n    "ada",\n    "$experiment_started"')
    expect(pretty).to_contain_text('"Experiment name": "dark_mode"')
