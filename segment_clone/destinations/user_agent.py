"""The browser and its version, read from a User-Agent, as Mixpanel's ``$browser`` properties.

Mixpanel's own JavaScript library sets ``$browser`` and ``$browser_version`` from the page; a
server-side event has only ``context.userAgent``. The order of the checks matters: most
browsers name others in their User-Agent (Edge says "Chrome" and "Safari", Chrome says
"Safari"), so the most specific names are tried first.
"""

from __future__ import annotations

import re

_BROWSERS: tuple[tuple[str, str, str], ...] = (
    # (a marker in the User-Agent, the browser's name, where its version follows)
    ("OPR/", "Opera", r"OPR/"),
    ("Opera Mini", "Opera Mini", r"Opera Mini/"),
    ("BlackBerry", "BlackBerry", r"Version/"),
    ("BB10", "BlackBerry", r"Version/"),
    ("IEMobile", "Internet Explorer Mobile", r"IEMobile/"),
    ("SamsungBrowser/", "Samsung Internet", r"SamsungBrowser/"),
    ("Edg/", "Microsoft Edge", r"Edg/"),
    ("Edge/", "Microsoft Edge", r"Edge/"),
    ("FBIOS", "Facebook Mobile", r"FBSV/"),
    ("CriOS/", "Chrome iOS", r"CriOS/"),
    ("FxiOS/", "Firefox iOS", r"FxiOS/"),
    ("UCBrowser/", "UC Browser", r"UCBrowser/"),
    ("Chrome/", "Chrome", r"Chrome/"),
    ("Firefox/", "Firefox", r"Firefox/"),
    ("Trident/", "Internet Explorer", r"rv:"),
    ("MSIE ", "Internet Explorer", r"MSIE "),
    ("Konqueror", "Konqueror", r"Konqueror/"),
    ("Android", "Android Mobile", r"Android "),
)
_VERSION = r"(\d+(?:\.\d+)?)"


def browser(user_agent: str) -> tuple[str, str | None] | None:
    """``(name, version)`` of the browser, or None when the User-Agent names none we know."""
    for marker, name, version_at in _BROWSERS:
        if marker in user_agent:
            return name, _version(user_agent, version_at)
    if "Safari/" in user_agent:
        name = "Mobile Safari" if "Mobile" in user_agent else "Safari"
        return name, _version(user_agent, "Version/")
    return None


def _version(user_agent: str, version_at: str) -> str | None:
    # The User-Agent is the caller's input: the pattern is anchored on a literal and bounded,
    # so it runs in linear time whatever the string holds.
    found = re.search(re.escape(version_at) + _VERSION, user_agent[:2048])
    return found.group(1) if found else None
