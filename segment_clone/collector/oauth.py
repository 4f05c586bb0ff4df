"""OAuth 2 client credentials for the collector: ``POST /token`` and the bearer tokens it issues.

A client proves who it is with a JWT signed by its RSA key (RFC 7523 client assertion), as
Segment's token service expects. ``verify_assertion`` checks it, given the time: signature and
``kid``, ``iss``/``sub``, ``aud``, the ``iat``/``exp`` window and a single use of each ``jti``.
A good assertion buys a random opaque access token valid for ``token_ttl`` seconds, which
``/v1/*`` then accepts as ``Authorization: Bearer``.

Errors follow RFC 6749: 400 ``invalid_request`` or ``unsupported_grant_type`` for a bad form,
401 ``invalid_client`` for an assertion that does not prove the client. A clock problem is a
400 ``invalid_request`` described as "Token is expired" or "Token used before issued", which
Segment's SDKs retry after correcting their clock from the ``Date`` header.

Only digests of tokens are kept, and neither tokens nor assertions are ever logged.
"""

from __future__ import annotations

import hashlib
import heapq
import logging
import secrets
import threading
import time
from collections import Counter, deque
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs

from .routing import Request, Response, Route

log = logging.getLogger("segment_clone.collector")

DEFAULT_TOKEN_TTL = 3600
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM_TYPE = "application/x-www-form-urlencoded"
CLOCK_LEEWAY = 10
"""Seconds by which ``iat``/``nbf`` may be ahead and ``exp`` behind: clocks are never exact."""
MAX_ASSERTION_LIFETIME = 300
"""Longest ``exp - iat`` accepted, which also bounds how long a ``jti`` must be remembered."""
REQUIRED_CLAIMS = ("iss", "sub", "aud", "iat", "exp", "jti")
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost"})
WILDCARD = "0.0.0.0"
TOKEN_LOG_SIZE = 100
"""Recent issuances shown by ``GET /api/oauth``."""


class OAuthError(Exception):
    """Answered as ``status`` with ``{"error": error, "error_description": description}``."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(status, error, description)
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True)
class OAuthSettings:
    """The one client the collector knows, and how long its tokens live."""

    client_id: str
    key_id: str
    public_key: Any
    """An RSA public key object (see ``load_public_key``)."""
    token_ttl: int = DEFAULT_TOKEN_TTL
    clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)
    """Wall-clock seconds, for assertion windows and token expiry; tests pass a fake one."""

    def __post_init__(self) -> None:
        if not self.client_id or not self.key_id:
            raise ValueError("the OAuth client id and key id must not be empty")
        if self.token_ttl < 1:
            raise ValueError(f"the token TTL must be at least 1 second, got: {self.token_ttl!r}")

    @classmethod
    def from_file(
        cls, client_id: str, key_id: str, pem_path: str | Path, token_ttl: int = DEFAULT_TOKEN_TTL
    ) -> OAuthSettings:
        """Settings with the public key read from a PEM file; ValueError if it is unusable."""
        try:
            pem = Path(pem_path).read_bytes()
        except OSError as e:
            raise ValueError(f"cannot read the public key {pem_path}: {e.strerror}") from None
        return cls(client_id, key_id, load_public_key(pem), token_ttl)


def load_public_key(pem: bytes | str) -> Any:
    """An RSA public key from PEM (``SubjectPublicKeyInfo``); ValueError for anything else."""
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        key = load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, TypeError) as e:
        raise ValueError(f"not a PEM public key: {e}") from None
    if not isinstance(key, RSAPublicKey):
        raise ValueError("the OAuth public key must be an RSA key (assertions are RS256)")
    return key


def own_urls(host: str, port: int) -> frozenset[str]:
    """The base URLs a client may name in ``aud`` to mean this server.

    Not the request's ``Host`` header: that is the sender's to choose, so trusting it would let
    an assertion made for another server be replayed here.
    """
    names = {host}
    if host in LOOPBACK_NAMES or host == WILDCARD:
        names |= LOOPBACK_NAMES
    return frozenset(f"http://{name}:{port}" for name in names)


def verify_assertion(
    assertion: str, settings: OAuthSettings, audiences: Collection[str], now: float
) -> dict[str, Any]:
    """The claims of a client assertion that proves ``settings.client_id`` at time ``now``.

    Raises ``OAuthError``. The claims are read only once the signature verifies, so a caller
    without the key learns nothing about which claims would have been accepted.
    """
    import jwt

    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise _invalid_client("client_assertion is not a JWT") from None
    if header.get("alg") != "RS256":
        raise _invalid_client("client_assertion must be signed with RS256")
    if header.get("kid") != settings.key_id:
        raise _invalid_client("client_assertion names an unknown key id")
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            settings.public_key,
            algorithms=["RS256"],
            options={
                "verify_exp": False,  # the window is checked below, against ``now``
                "verify_nbf": False,
                "verify_iat": False,
                "verify_aud": False,
                "verify_iss": False,
            },
        )
    except jwt.InvalidSignatureError:
        raise _invalid_client("client_assertion signature does not verify") from None
    except jwt.PyJWTError as e:  # the type only: a message may quote the assertion
        raise _invalid_client(f"client_assertion is malformed ({type(e).__name__})") from None
    missing = [name for name in REQUIRED_CLAIMS if name not in claims]
    if missing:
        raise _invalid_client(f"client_assertion lacks claims: {', '.join(missing)}")
    if claims["iss"] != settings.client_id or claims["sub"] != settings.client_id:
        raise _invalid_client("client_assertion iss/sub is not a known client")
    if not _names_audience(claims["aud"], audiences):
        raise _invalid_client("client_assertion aud does not name this server")
    if not isinstance(claims["jti"], str) or not claims["jti"]:
        raise _invalid_client("client_assertion jti must be a non-empty string")
    _check_window(claims, now)
    return claims


def _names_audience(aud: Any, audiences: Collection[str]) -> bool:
    values = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    return any(isinstance(v, str) and v.rstrip("/") in audiences for v in values)


def _check_window(claims: dict[str, Any], now: float) -> None:
    iat, exp, nbf = claims["iat"], claims["exp"], claims.get("nbf", claims["iat"])
    if not all(_is_number(v) for v in (iat, exp, nbf)):
        raise OAuthError(400, "invalid_request", "iat, exp and nbf must be numbers")
    if now >= exp + CLOCK_LEEWAY:
        raise OAuthError(400, "invalid_request", "Token is expired")
    if iat > now + CLOCK_LEEWAY or nbf > now + CLOCK_LEEWAY:
        raise OAuthError(400, "invalid_request", "Token used before issued")
    if not 0 < exp - iat <= MAX_ASSERTION_LIFETIME:
        raise OAuthError(
            400, "invalid_request", f"exp - iat must be 1 to {MAX_ASSERTION_LIFETIME} seconds"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _invalid_client(description: str) -> OAuthError:
    return OAuthError(401, "invalid_client", description)


class SeenAssertions:
    """``jti`` values already used, each remembered until its assertion has expired."""

    def __init__(self) -> None:
        self._expiries: list[tuple[float, str]] = []
        self._seen: set[str] = set()

    def first_use(self, jti: str, exp: float, now: float) -> bool:
        """Record ``jti``; False if it was seen before (a replay)."""
        while self._expiries and self._expiries[0][0] < now:
            self._seen.discard(heapq.heappop(self._expiries)[1])
        if jti in self._seen:
            return False
        self._seen.add(jti)
        heapq.heappush(self._expiries, (exp + CLOCK_LEEWAY, jti))
        return True


@dataclass
class Issued:
    """One issued token, as the inspection endpoint shows it (without the token)."""

    number: int
    issued_at: float
    expires_at: float
    uses: int = 0
    revoked: bool = False


class TokenEndpoint:
    """``POST /token``, the bearer-token check for ``/v1/*``, and ``/api/oauth`` to inspect.

    ``address`` gives the collector's bound host and port, known only once it listens.
    """

    def __init__(self, settings: OAuthSettings, address: Callable[[], tuple[str, int]]) -> None:
        self.settings = settings
        self._address = address
        self._lock = threading.Lock()
        self._seen = SeenAssertions()
        self._active: dict[bytes, Issued] = {}
        self._recent: deque[Issued] = deque(maxlen=TOKEN_LOG_SIZE)
        self.issued = 0
        self.refused: Counter[str] = Counter()
        """Refused token requests by error code, plus ``"bearer"`` for refused API calls."""

    def routes(self) -> list[Route]:
        return [
            # SDK-facing (public), and subject to fault injection (ingest)
            Route("POST", "/token", self.token, ingest=True, public=True),
            Route("GET", "/api/oauth", self.inspect),
            Route("POST", "/api/oauth/revoke", self.revoke),
        ]

    def token(self, request: Request) -> Response:
        try:
            return self._grant(request)
        except OAuthError as e:
            with self._lock:
                self.refused[e.error] += 1
            log.warning("refused a token request (%d %s): %s", e.status, e.error, e.description)
            return _no_store(
                Response.json({"error": e.error, "error_description": e.description}, e.status)
            )

    def _grant(self, request: Request) -> Response:
        form = _form(request)
        grant_type = form.get("grant_type")
        if not grant_type:
            raise OAuthError(400, "invalid_request", "grant_type is missing")
        if grant_type != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "only client_credentials is supported")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError(
                400, "invalid_request", f"client_assertion_type must be {ASSERTION_TYPE}"
            )
        assertion = form.get("client_assertion")
        if not assertion:
            raise OAuthError(400, "invalid_request", "client_assertion is missing")
        now = self.settings.clock()
        claims = verify_assertion(assertion, self.settings, own_urls(*self._address()), now)
        token = secrets.token_urlsafe(32)
        ttl = self.settings.token_ttl
        with self._lock:
            if not self._seen.first_use(claims["jti"], claims["exp"], now):
                raise _invalid_client("client_assertion was already used (jti replayed)")
            self._active = {d: t for d, t in self._active.items() if t.expires_at > now}
            self.issued += 1
            issued = Issued(self.issued, now, now + ttl)
            self._active[_digest(token)] = issued
            self._recent.append(issued)
        log.info("issued access token #%d, valid for %d s", issued.number, ttl)
        return _no_store(
            Response.json({"access_token": token, "token_type": "Bearer", "expires_in": ttl})
        )

    def check_token(self, token: str) -> bool:
        """True if ``token`` was issued here and has not expired or been revoked."""
        now = self.settings.clock()
        with self._lock:
            issued = self._active.get(_digest(token))
            if issued is None or now >= issued.expires_at:
                self.refused["bearer"] += 1
                return False
            issued.uses += 1
            return True

    def revoke_all(self) -> int:
        """Revoke every live token (as an expiry or a key rotation would); returns how many."""
        with self._lock:
            revoked = list(self._active.values())
            self._active.clear()
            for issued in revoked:
                issued.revoked = True
        return len(revoked)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "client_id": self.settings.client_id,
                "token_ttl": self.settings.token_ttl,
                "issued": self.issued,
                "refused": dict(self.refused),
                "recent": [asdict(i) for i in self._recent],
            }

    def inspect(self, request: Request) -> Response:
        return Response.json(self.snapshot())

    def revoke(self, request: Request) -> Response:
        return Response.json({"revoked": self.revoke_all()})


def _form(request: Request) -> dict[str, str]:
    """The form fields of a token request; each may appear once (RFC 6749, section 3.2)."""
    content_type = (request.headers.get("Content-Type") or "").partition(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise OAuthError(400, "invalid_request", f"the body must be {FORM_TYPE}")
    try:
        fields = parse_qs(request.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise OAuthError(400, "invalid_request", "the body is not UTF-8") from None
    repeated = sorted(name for name, values in fields.items() if len(values) > 1)
    if repeated:
        raise OAuthError(400, "invalid_request", f"repeated parameters: {', '.join(repeated)}")
    return {name: values[0] for name, values in fields.items()}


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response
