"""Who may send: write keys (HTTP Basic or ``writeKey`` in the body), and a bearer-token hook.

With no allow-list every key is accepted, as a local sink should be. A ``Bearer`` header is
refused unless a token checker is plugged in (the OAuth ``/token`` endpoint supplies one).
"""

from __future__ import annotations

import binascii
import hmac
from base64 import b64decode
from collections.abc import Iterable
from typing import Callable

from .routing import Headers, HTTPError

TokenChecker = Callable[[str], bool]


class WriteKeyAuth:
    def __init__(self, write_keys: Iterable[str] = (), tokens: TokenChecker | None = None):
        self.write_keys = [k.encode() for k in write_keys]
        self.tokens = tokens

    def check(self, headers: Headers, body_write_key: object = None) -> None:
        """Return if the request may be stored; raise 401 otherwise."""
        scheme, _, credentials = (headers.get("Authorization") or "").strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            if self.tokens is None:
                raise _unauthorized("bearer tokens are not accepted by this collector")
            if not self.tokens(credentials.strip()):
                raise _unauthorized("invalid or expired access token")
            return
        key: object = body_write_key
        if scheme == "basic":
            key = basic_credentials(credentials)[0]
        elif scheme:
            raise _unauthorized(f"unsupported Authorization scheme {scheme!r}")
        if not self.write_keys:
            return
        if not isinstance(key, str) or not key:
            raise _unauthorized("missing write key")
        candidate = key.encode()
        if not any(hmac.compare_digest(candidate, allowed) for allowed in self.write_keys):
            raise _unauthorized("unknown write key")


def basic_credentials(credentials: str) -> tuple[str, str]:
    """``(user, password)`` from the part of a Basic ``Authorization`` header after "Basic"."""
    try:
        decoded = b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _unauthorized("malformed Basic credentials") from None
    user, _, password = decoded.partition(":")
    return user, password


def _unauthorized(message: str) -> HTTPError:
    return HTTPError(401, "unauthorized", message)
