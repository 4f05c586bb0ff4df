"""Malformed requests thrown at every route of a real collector (hypothesis): each gets an answer,
and none is a 5xx other than a fault injection the request itself turned on."""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_clone.collector import Collector, FaultSettings
from segment_clone.collector.plan import parse_plan

from .plans import COMPACT

EXTRA_PATHS = ["/", "/nowhere", "/v1", "/api", "//v1/batch", "/v1/batch/", "/%00", "/api/entry/"]
PARAMS = ["order", "source", "valid", "type", "user", "q", "event", "user_id", "token",
          "distinct_id", "timeout"]  # fmt: skip
NUMERIC = {"limit", "id", "after", "before", "wait"}
NUMBERISH = st.sampled_from(
    ["99999999999999999999", "1e400", "nan", "-1", "\u00b2", "inf", "0x10", "1.5", "0", "1", ""]
)
"""Hostile values first: hypothesis favours the start of a list."""
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = ["type", "userId", "anonymousId", "event", "batch", "messageId", "context", "properties",
        "data", "$token", "$distinct_id", "$set", "token", "time", "$insert_id", "fail_rate",
        "delay_ms", "retry_after", "fail_status", "flags", "writeKey"]  # fmt: skip
MESSAGES = st.dictionaries(st.sampled_from(KEYS), JSON_VALUES, max_size=6)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["json", "batch", "nested", "bytes", "form", "empty"]))
    if kind == "json":
        return json.dumps(draw(MESSAGES)).encode()
    if kind == "batch":
        return json.dumps({"batch": draw(st.lists(MESSAGES, max_size=3))}).encode()
    if kind == "nested":
        depth = draw(st.integers(1, 1100))
        return b"[" * depth + b"]" * depth
    if kind == "form":
        return b"data=" + json.dumps(draw(MESSAGES)).encode() + b"&verbose=1"
    if kind == "empty":
        return b""
    return draw(st.binary(max_size=200))


@st.composite
def requests(
    draw: st.DrawFn, routes: list[tuple[str, str]]
) -> tuple[str, str, dict[str, str], bytes]:
    if draw(st.integers(0, 7)):  # mostly a real route, so that the request gets past routing
        method, path = draw(st.sampled_from(routes))
    else:
        method = draw(st.sampled_from(["GET", "POST", "OPTIONS", "PUT", "HEAD", "DELETE"]))
        path = draw(st.sampled_from(EXTRA_PATHS + [p for _, p in routes]))
    query = {name: draw(NUMBERISH) for name in sorted(NUMERIC) if draw(st.booleans())}
    for name in draw(st.sets(st.sampled_from(PARAMS), max_size=2)):
        query[name] = draw(st.text(max_size=8))
    if "wait" in query:
        query["timeout"] = "0.05"  # a wait is answered, not held for the fuzz run
    body = draw(bodies())
    hosts = ["localhost", "127.0.0.1", "[::1]:1", "evil.example"]
    headers = {
        "Host": draw(st.sampled_from(hosts)) if draw(st.integers(0, 5)) == 0 else "localhost"
    }
    for name, values in (
        ("Content-Type", ["application/json", "text/plain", "application/x-www-form-urlencoded"]),
        ("Origin", ["https://evil.example", "null", "http://localhost"]),
        ("X-Retry-Count", ["1", "x", "\u00b2", "9" * 40, "-3"]),
        ("Authorization", ["Basic !!!", "Basic Og==", "Bearer x", "Digest y", "Basic"]),
        ("Access-Control-Request-Method", ["POST", "GET", "BREW"]),
    ):
        if draw(st.integers(0, 3)) == 0:  # mostly absent: each refusal hides the rest
            headers[name] = draw(st.sampled_from(values))
    if draw(st.integers(0, 3)) == 0:
        headers["Content-Encoding"] = draw(st.sampled_from(["gzip", "br", "identity"]))
        if headers["Content-Encoding"] == "gzip" and draw(st.booleans()):
            body = gzip.compress(body) + draw(st.sampled_from([b"", b"trailing"]))
    encoded = "&".join(f"{k}={quote(v, safe='')}" for k, v in query.items())
    return method, path + ("?" + encoded if encoded else ""), headers, body


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    db = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    plan = parse_plan(COMPACT)
    with Collector(db, port=0, plan=plan, mixpanel_secret="s", write_keys=["k"]).start() as c:
        yield c


def route_table(collector: Collector) -> list[tuple[str, str]]:
    """Every (method, path) of the router, so that a route added later is fuzzed too."""
    return sorted((m, p) for p, by_method in collector.router._routes.items() for m in by_method)


def test_every_route_answers_malformed_requests_without_a_5xx(fuzzed: Collector) -> None:
    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(requests(route_table(fuzzed)))
    def check(request: tuple[str, str, dict[str, str], bytes]) -> None:
        method, target, headers, body = request
        conn = http.client.HTTPConnection("127.0.0.1", fuzzed.port, timeout=10)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in {**headers, "Content-Length": str(len(body))}.items():
                conn.putheader(name, value.encode("utf-8"))
            conn.endheaders(body)
            answer = conn.getresponse()  # a socket.timeout here is an unanswered request
            streamed = answer.getheader("Content-Type") == "text/event-stream"
            text = b"" if streamed else answer.read()
        finally:
            conn.close()
            fuzzed.faults.update(vars(FaultSettings()))  # a fault the request set ends with it
        injected = b"injected_fault" in text or b"fault injection" in text
        assert answer.status < 500 or injected, (method, target, headers, body[:200], text)

    check()


def test_the_fuzzer_draws_from_every_route(fuzzed: Collector) -> None:
    drawn = {path for _, path in route_table(fuzzed)}
    assert {"/v1/batch", "/track", "/import", "/api/faults", "/api/reset", "/flags"} <= drawn
