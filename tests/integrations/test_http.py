"""What a request says about its sender: the parsing every middleware shares."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_clone.integrations.http import (
    HEADERS,
    MAX_USER_AGENT,
    TrustedProxies,
    anonymous_id_from_cookie,
    campaign_from_query,
    locale_from_header,
    request_context,
)


def test_forwarded_for_is_read_only_from_trusted_proxies() -> None:
    none = TrustedProxies()
    assert none.client_ip("10.0.0.2", "198.51.100.9") == "10.0.0.2"
    lb = TrustedProxies(["10.0.0.0/8"])
    assert lb.client_ip("10.0.0.2", "198.51.100.9") == "198.51.100.9"
    assert lb.client_ip("203.0.113.5", "198.51.100.9") == "203.0.113.5"  # not from the proxy
    # Read from the right: the client can write anything to the left of the trusted hops.
    assert lb.client_ip("10.0.0.2", "1.1.1.1, 198.51.100.9, 10.0.0.7") == "198.51.100.9"
    assert lb.client_ip("10.0.0.2", "10.0.0.9, 10.0.0.7") == "10.0.0.9"
    assert lb.client_ip("10.0.0.2", "not-an-ip, 10.0.0.7") == "10.0.0.7"
    assert lb.client_ip("10.0.0.2", "198.51.100.9:4431") == "198.51.100.9"
    assert TrustedProxies("::1").client_ip("::1", "[2001:db8::1]:80") == "2001:db8::1"


def test_campaign_comes_from_utm_parameters_as_analytics_js_names_them() -> None:
    query = "utm_source=news&utm_medium=email&utm_campaign=spring%20sale&utm_term=x+y&q=1"
    assert campaign_from_query(query) == {
        "source": "news",
        "medium": "email",
        "name": "spring sale",
        "term": "x y",
    }
    assert campaign_from_query("q=utm_source") == {}
    assert campaign_from_query("&".join(f"utm_k{i}=v" for i in range(100))) == {
        f"k{i}": "v" for i in range(10)
    }


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("fr-CH, fr;q=0.9, en;q=0.8", "fr-CH"),
        ("en;q=0.5, de-DE;q=0.9", "de-DE"),
        ("*", None),
        ("<script>, en", "en"),
        ("en;q=abc, fr;q=0.1", "fr"),
        ("", None),
    ],
)
def test_locale_is_the_preferred_valid_language_tag(header: str, locale: str | None) -> None:
    assert locale_from_header(header) == locale


@pytest.mark.parametrize(
    ("cookie", "anonymous_id"),
    [
        ("ajs_anonymous_id=%22b3a1c9e2-0f7d%22; other=1", "b3a1c9e2-0f7d"),
        ('a=1; ajs_anonymous_id="abc"', "abc"),
        ("ajs_anonymous_id=plain-id", "plain-id"),
        ("ajs_anonymous_id=", None),
        ("ajs_anonymous_id=%00bad", None),
        (f"ajs_anonymous_id={'x' * 500}", None),
        ("xajs_anonymous_id=abc", None),
        (";;;===;", None),
    ],
)
def test_anonymous_id_comes_from_the_analytics_js_cookie(
    cookie: str, anonymous_id: str | None
) -> None:
    assert anonymous_id_from_cookie(cookie) == anonymous_id


def test_the_context_fields_are_bounded_and_the_host_checked() -> None:
    context = request_context(
        "203.0.113.5",
        {"user-agent": "U" * 10_000, "host": "evil host\r\n", "referer": "R" * 10_000},
        "javascript",
        "example.com",
        "/caf\u00e9 menu",
        "a=1",
        TrustedProxies(),
    )
    assert len(context["userAgent"]) == MAX_USER_AGENT
    assert context["page"]["url"] == "http://example.com/caf%C3%A9%20menu?a=1"
    assert context["page"]["path"] == "/caf%C3%A9%20menu"
    assert context["page"]["search"] == "?a=1"
    assert len(context["page"]["referrer"]) == 2048


HEADER_VALUES = st.text(max_size=3000) | st.sampled_from(
    ["ajs_anonymous_id=%22a%22", "utm_source=x&utm_campaign=y", "en-US,fr;q=0.5", "::1, 10.0.0.1"]
)


@settings(max_examples=150, deadline=None)
@given(
    peer=st.none() | st.text(max_size=50) | st.ip_addresses().map(str),
    headers=st.dictionaries(st.sampled_from(HEADERS), HEADER_VALUES),
    scheme=st.text(max_size=10),
    server=st.none() | st.text(max_size=300),
    path=st.text(max_size=3000),
    query=st.text(max_size=3000),
)
def test_any_request_gives_a_bounded_scope_and_never_raises(
    peer: str | None,
    headers: dict[str, str],
    scheme: str,
    server: str | None,
    path: str,
    query: str,
) -> None:
    trusted = TrustedProxies(["10.0.0.0/8", "::1"])
    # The parts, not request_scope, which would hide a failure behind an empty scope.
    context = request_context(peer, headers, scheme, server, path, query, trusted)
    assert len(orjson.dumps(context)) < 16 * 1024  # far under a message's 32 KB, whatever came
    anonymous_id = anonymous_id_from_cookie(headers.get("cookie"))
    assert anonymous_id is None or 0 < len(anonymous_id) <= 200
