"""The debugger page at ``/``: one HTML document with its script and style inlined.

No build step and nothing fetched from elsewhere: ``assets/`` holds the page as written. The
page holds no event data (it reads the ``/api/*`` endpoints), so it is put together once. The
Content-Security-Policy allows exactly the inlined script and style, by their SHA-256, and
requires Trusted Types, so that the browser itself refuses to parse event data as HTML.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from importlib import resources

from .routing import Response

HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def response() -> Response:
    body, policy = _page()
    return Response(
        body=body,
        content_type="text/html; charset=utf-8",
        headers={**HEADERS, "Content-Security-Policy": policy},
    )


@functools.cache
def _page() -> tuple[bytes, str]:
    assets = resources.files(__package__) / "assets"
    html, style, script = (
        (assets / name).read_text(encoding="utf-8")
        for name in ("debugger.html", "debugger.css", "debugger.js")
    )
    assert "</script" not in script and "</style" not in style
    page = html.replace("/*STYLE*/", style, 1).replace("/*SCRIPT*/", script, 1)
    policy = "; ".join(
        (
            "default-src 'none'",
            f"script-src '{_digest(script)}'",
            f"style-src '{_digest(style)}'",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        )
    )
    return page.encode(), policy


def _digest(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
