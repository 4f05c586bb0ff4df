"""What an HTTP request says about its sender, read defensively for every middleware.

Headers are the client's to write: every field is bounded in length, malformed values are
skipped, and a failure of any kind gives an empty scope instead of failing the request. The
peer address is ``context.ip`` unless the operator names trusted proxies; only then is
``X-Forwarded-For`` read, from the right, up to the first address that is not trusted.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable
from typing import Any, Callable, Union
from urllib.parse import quote, unquote

from ..scopes import Resolver, Scope

log = logging.getLogger("segment")

HEADERS = ("user-agent", "referer", "accept-language", "cookie", "x-forwarded-for", "host")
"""The only headers read; the adapters pick these out (lower-case names)."""

MAX_URL = 2048
MAX_USER_AGENT = 1024
MAX_CAMPAIGN_VALUE = 256
MAX_QUERY_SCANNED = 8192
MAX_CAMPAIGN_KEYS = 10
MAX_ANONYMOUS_ID = 200
ANONYMOUS_ID_COOKIE = "ajs_anonymous_id"
"""analytics.js keeps its anonymous id in this cookie; server events carrying it join the
browser's."""

_LOCALE = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8}){0,4}")
_HOST = re.compile(r"[A-Za-z0-9.\-\[\]:]{1,255}")
_UTM_KEY = re.compile(r"utm_([a-z0-9_]{1,32})")
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` is believed: addresses or networks, as strings."""

    def __init__(self, proxies: Iterable[str] = ()) -> None:
        if isinstance(proxies, str):
            proxies = [proxies]
        self.networks: list[Network] = [ipaddress.ip_network(p, strict=False) for p in proxies]

    def trusts(self, address: Address | None) -> bool:
        return address is not None and any(address in net for net in self.networks)

    def client_ip(self, peer: str | None, forwarded_for: str | None) -> str | None:
        """The peer, or behind trusted proxies the first address of ``X-Forwarded-For``, from
        the right, that is not one of them. None when the peer is not an IP address (a Unix
        socket, a test client)."""
        address = _address(peer)
        if not forwarded_for or not self.trusts(address):
            return None if address is None else str(address)
        for hop in reversed(forwarded_for.split(",")[-32:]):
            hop_address = _address(hop.strip())
            if hop_address is None:
                break  # garbage: believe no further than the last trusted hop
            address = hop_address
            if not self.trusts(address):
                break
        return str(address)


def _address(text: str | None) -> Address | None:
    if not text:
        return None
    text = text.strip()
    if text.startswith("["):  # [v6]:port
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def request_scope(
    *,
    trusted: TrustedProxies,
    user_id: Resolver | None,
    peer: str | None = None,
    headers: dict[str, str] | None = None,
    scheme: str = "http",
    server: str | None = None,
    path: str = "/",
    query: str = "",
) -> Scope:
    """The scope of one request. ``headers`` holds the ``HEADERS`` present, lower-case names."""
    headers = headers or {}
    try:
        return Scope(
            anonymous_id=anonymous_id_from_cookie(headers.get("cookie")),
            context=request_context(peer, headers, scheme, server, path, query, trusted),
            user_id_resolver=user_id,
        )
    except Exception:  # a hostile request gets no context; it never fails
        log.warning("could not read the request's context; its events go without", exc_info=True)
        return Scope(user_id_resolver=user_id)


def request_context(
    peer: str | None,
    headers: dict[str, str],
    scheme: str,
    server: str | None,
    path: str,
    query: str,
    trusted: TrustedProxies,
) -> dict[str, Any]:
    """Segment's ``context.ip``, ``userAgent``, ``page``, ``campaign`` and ``locale``."""
    context: dict[str, Any] = {}
    ip = trusted.client_ip(peer, headers.get("x-forwarded-for"))
    if ip:
        context["ip"] = ip
    user_agent = headers.get("user-agent")
    if user_agent:
        context["userAgent"] = user_agent[:MAX_USER_AGENT]
    host = headers.get("host") or server or ""
    if not _HOST.fullmatch(host):
        host = server if server and _HOST.fullmatch(server) else "localhost"
    path = quote(path, safe=_PATH_SAFE)[:MAX_URL] or "/"
    query = query[:MAX_URL]
    search = f"?{query}" if query else ""
    context["page"] = {
        "path": path,
        "referrer": headers.get("referer", "")[:MAX_URL],
        "search": search,
        "url": f"{scheme if scheme in ('http', 'https') else 'http'}://{host}{path}{search}",
    }
    campaign = campaign_from_query(query)
    if campaign:
        context["campaign"] = campaign
    locale = locale_from_header(headers.get("accept-language"))
    if locale:
        context["locale"] = locale
    return context


def campaign_from_query(query: str) -> dict[str, str]:
    """``utm_source`` to ``source`` and so on, ``utm_campaign`` to ``name``, as analytics.js."""
    campaign: dict[str, str] = {}
    if "utm_" not in query:
        return campaign
    for pair in query[:MAX_QUERY_SCANNED].split("&"):
        key, _, value = pair.partition("=")
        match = _UTM_KEY.fullmatch(unquote(key.replace("+", " ")))
        if match is None or not value:
            continue
        name = match.group(1)
        campaign["name" if name == "campaign" else name] = unquote(value.replace("+", " "))[
            :MAX_CAMPAIGN_VALUE
        ]
        if len(campaign) >= MAX_CAMPAIGN_KEYS:
            break
    return campaign


def locale_from_header(accept_language: str | None) -> str | None:
    """The preferred language tag of ``Accept-Language`` (highest q, first on a tie)."""
    if not accept_language:
        return None
    best, best_q = None, 0.0
    for item in accept_language[:MAX_URL].split(",")[:32]:
        tag, _, params = item.strip().partition(";")
        tag = tag.strip()
        if not _LOCALE.fullmatch(tag):
            continue
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                continue
        if q > best_q and q <= 1.0:
            best, best_q = tag, q
    return best


def anonymous_id_from_cookie(cookie: str | None) -> str | None:
    """analytics.js's ``ajs_anonymous_id``: a JSON string, URL-encoded, or a bare id."""
    if not cookie or ANONYMOUS_ID_COOKIE not in cookie:
        return None
    for part in cookie.split(";"):
        name, _, value = part.strip().partition("=")
        if name != ANONYMOUS_ID_COOKIE:
            continue
        value = unquote(value.strip())
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        if (
            0 < len(value) <= MAX_ANONYMOUS_ID
            and value.isprintable()
            and '"' not in value
            and "\ufffd" not in value  # bytes that were not UTF-8
        ):
            return value
        return None
    return None


def decode_latin1(text: str) -> str:
    """A WSGI string (bytes as latin-1, PEP 3333) as the UTF-8 text it carries."""
    try:
        return text.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text


UserIdOf = Callable[[Any], Any]
"""A middleware's ``user_id`` option: given the framework's request, return the user id or
None. It runs lazily, when a message first needs the identity."""
