"""Two origins in a real Chromium: the collector, and a second local server on another port that
serves a page. From a hostile page, ``fetch`` can neither read the events nor reset the store
nor change faults; from ``examples/web_page_to_collector.html``, events arrive (CORS); and the
debugger itself still works. Launched as in test_debugger_browser.py (the system's Chromium)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable

import pytest

from segment_clone.collector import Collector

from ..api import post
from .test_debugger_browser import CHROMIUM_ARGS, chromium

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # test_debugger_browser has already skipped, or failed under CI
    pytest.skip("playwright is not installed", allow_module_level=True)

REBOUND = "rebound.test"
"""A name Chromium resolves to 127.0.0.1, as an attacker's DNS would after rebinding it."""
EXAMPLE = Path(__file__).parents[2] / "examples" / "web_page_to_collector.html"
HOSTILE_SCRIPT = """
async function attempt(name, url, options) {
  try {
    const answer = await fetch(url, options);
    return [name, "read " + answer.status + " " + (await answer.text())];
  } catch (error) {
    return [name, "refused"];
  }
}
window.attacks = (async () => Object.fromEntries(await Promise.all([
  attempt("read events", COLLECTOR + "/api/events"),
  attempt("read stats", COLLECTOR + "/api/stats"),
  attempt("reset, simple", COLLECTOR + "/api/reset", {method: "POST", mode: "no-cors",
    headers: {"Content-Type": "text/plain"}, body: "{}"}),
  attempt("reset, json", COLLECTOR + "/api/reset", {method: "POST",
    headers: {"Content-Type": "application/json"}, body: "{}"}),
  attempt("faults, simple", COLLECTOR + "/api/faults", {method: "POST", mode: "no-cors",
    body: '{"fail_rate": 1}'}),
  attempt("faults, json", COLLECTOR + "/api/faults", {method: "POST",
    headers: {"Content-Type": "application/json"}, body: '{"fail_rate": 1}'}),
])))();
"""


class PageServer:
    """A second origin: serves one HTML page at ``/`` from 127.0.0.1 on its own port."""

    def __init__(self, html: str) -> None:
        body = html.encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = chromium()
    with sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=executable,
            headless=True,
            args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {REBOUND} 127.0.0.1"],
        )
        expect.set_options(timeout=10_000)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context()
    yield context.new_page()
    context.close()


@pytest.fixture
def served() -> Iterator[list[PageServer]]:
    servers: list[PageServer] = []
    yield servers
    for server in servers:
        server.close()


def serve(served: list[PageServer], html: str) -> str:
    server = PageServer(html)
    served.append(server)
    return server.url


def test_a_page_on_another_origin_cannot_read_reset_or_change_faults(
    collector: Collector, page: Page, served: list[PageServer]
) -> None:
    track = {"type": "track", "userId": "ada", "event": "Signed Up", "messageId": "m1",
             "properties": {"email": "ada@example.com"}}  # fmt: skip
    assert post(collector.url, "/v1/track", track).status == 200
    hostile = f"<script>const COLLECTOR = {collector.url!r};{HOSTILE_SCRIPT}</script>"
    page.goto(serve(served, hostile))
    outcomes = page.evaluate("window.attacks")
    assert outcomes["read events"] == "refused"
    assert outcomes["read stats"] == "refused"
    assert outcomes["reset, json"] == "refused"  # its preflight is refused
    assert outcomes["faults, json"] == "refused"
    assert outcomes["reset, simple"] == "read 0 "  # opaque: sent, but refused by the collector
    assert outcomes["faults, simple"] == "read 0 "
    assert collector.store.count() == 1
    assert collector.faults.settings.fail_rate == 0
    rejected = collector.stats()["rejected"]
    assert rejected == {}  # the API's refusals are not ingestion requests

    page.goto(collector.url + "/")  # the debugger itself, on its own origin, still works
    expect(page.locator("#rows tr td.name")).to_have_text(["Signed Up"])
    expect(page.locator("#total")).to_have_text("1")


def test_a_rebound_name_gets_nothing_from_the_collector(collector: Collector, page: Page) -> None:
    assert post(collector.url, "/v1/track", {"type": "track", "userId": "ada"}).status == 200
    for path in ("/", "/api/events"):
        opened = page.goto(f"http://{REBOUND}:{collector.port}{path}")
        assert opened is not None and opened.status == 403
        assert "ada" not in opened.text()
    # and the refusal's own Content-Security-Policy lets no script on it fetch anything
    read = page.evaluate("fetch('/api/events').then(answer => answer.status, () => 'blocked')")
    assert read == "blocked"
    assert collector.store.count() == 1


def test_with_a_token_the_debugger_opens_from_the_printed_url(
    make_collector: Callable[..., Collector], page: Page
) -> None:
    tokened = make_collector(token="printed-token")
    assert post(tokened.url, "/v1/track", {"type": "track", "userId": "ada", "event": "In"})
    refused = page.goto(tokened.url + "/")
    assert refused is not None and refused.status == 401
    page.goto(tokened.url + "/?token=printed-token")
    assert page.url == tokened.url + "/"  # the token left the address bar, for a cookie
    expect(page.locator("#rows tr td.name")).to_have_text(["In"])  # the API and the stream


def test_the_example_page_sends_to_both_apis_across_origins(
    collector: Collector, page: Page, served: list[PageServer]
) -> None:
    html = EXAMPLE.read_text().replace("http://127.0.0.1:8787", collector.url)
    page.goto(serve(served, html))
    page.click("#send")
    expect(page.locator("#status")).to_have_text("answered 200 and 200")
    stored = collector.wait_for(2)
    assert sorted(m.get("type", "mixpanel") for m in stored) == ["mixpanel", "track"]
    assert {m["event"] for m in stored} == {"Page Button Clicked"}
