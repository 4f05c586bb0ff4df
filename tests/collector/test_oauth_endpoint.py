"""The collector's OAuth token endpoint: assertion checks (pure, with an injected clock) and
``POST /token`` plus bearer tokens on ``/v1/*`` over real sockets."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlencode

import jwt
import pytest

from segment_clone.collector import Collector
from segment_clone.collector.command import main as collector_main
from segment_clone.collector.oauth import (
    ASSERTION_TYPE,
    CLOCK_LEEWAY,
    FORM_TYPE,
    OAuthError,
    OAuthSettings,
    SeenAssertions,
    load_public_key,
    own_urls,
    verify_assertion,
)

from ..api import Reply, call, post, track
from ..keys import make_key_pair

CLIENT = "client-1"
KID = "kid-1"
AUD = "http://127.0.0.1:8787"
NOW = 1_700_000_000.0
TTL = 60


class Clock:
    """The endpoint's wall clock, moved by the test."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def other_key() -> str:
    """A private key the collector does not know."""
    return make_key_pair()[0]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(key_pair: tuple[str, str], clock: Clock) -> OAuthSettings:
    return OAuthSettings(CLIENT, KID, load_public_key(key_pair[1]), TTL, clock)


def claims(aud: Any = AUD, at: float = NOW, **changes: Any) -> dict[str, Any]:
    """Good claims as the SDK makes them at time ``at``; a change to None removes that claim."""
    base = {
        "iss": CLIENT,
        "sub": CLIENT,
        "aud": aud,
        "iat": int(at) - 5,
        "exp": int(at) + 55,
        "jti": str(uuid.uuid4()),
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: str, kid: str = KID) -> str:
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


def refusal(assertion: str, settings: OAuthSettings, now: float = NOW) -> OAuthError:
    with pytest.raises(OAuthError) as caught:
        verify_assertion(assertion, settings, {AUD}, now)
    return caught.value


# -- verify_assertion: pure, with the time given ----------------------------------------------


def test_a_good_assertion_gives_its_claims(
    settings: OAuthSettings, key_pair: tuple[str, str]
) -> None:
    good = claims()
    assert verify_assertion(sign(good, key_pair[0]), settings, {AUD}, NOW) == good


@pytest.mark.parametrize("aud", [AUD + "/", ["https://elsewhere.example", AUD]])
def test_aud_may_have_a_trailing_slash_or_be_a_list(
    settings: OAuthSettings, key_pair: tuple[str, str], aud: Any
) -> None:
    assert verify_assertion(sign(claims(aud), key_pair[0]), settings, {AUD}, NOW)["aud"] == aud


@pytest.mark.parametrize(
    ("change", "description"),
    [
        ({"kid": "kid-2"}, "unknown key id"),
        ({"iss": "client-2"}, "iss/sub"),
        ({"sub": "client-2"}, "iss/sub"),
        ({"aud": "http://127.0.0.1:9999"}, "aud does not name this server"),
        ({"aud": "https://oauth2.segment.io"}, "aud does not name this server"),
        ({"jti": None}, "lacks claims: jti"),
        ({"exp": None, "iat": None}, "lacks claims: iat, exp"),
        ({"jti": ""}, "jti must be a non-empty string"),
    ],
)
def test_a_wrong_claim_or_key_id_is_an_invalid_client(
    settings: OAuthSettings,
    key_pair: tuple[str, str],
    change: dict[str, Any],
    description: str,
) -> None:
    kid = change.pop("kid", KID)
    error = refusal(sign(claims(**change), key_pair[0], kid), settings)
    assert (error.status, error.error) == (401, "invalid_client")
    assert description in error.description


def test_a_signature_by_another_key_or_algorithm_is_refused(
    settings: OAuthSettings, other_key: str
) -> None:
    forged = refusal(sign(claims(), other_key), settings)
    assert (forged.status, forged.error) == (401, "invalid_client")
    assert "signature" in forged.description
    hmac = jwt.encode(
        claims(), "a shared secret of at least 32 bytes", algorithm="HS256", headers={"kid": KID}
    )
    assert "RS256" in refusal(hmac, settings).description
    assert "not a JWT" in refusal("not.a.jwt", settings).description


@pytest.mark.parametrize(
    ("now", "description"),
    [
        (NOW + 55 + CLOCK_LEEWAY, "Token is expired"),
        (NOW - 5 - CLOCK_LEEWAY - 1, "Token used before issued"),
    ],
)
def test_an_assertion_outside_its_window_names_the_clock_problem(
    settings: OAuthSettings, key_pair: tuple[str, str], now: float, description: str
) -> None:
    error = refusal(sign(claims(), key_pair[0]), settings, now)
    assert (error.status, error.error, error.description) == (400, "invalid_request", description)


def test_the_window_allows_some_clock_difference(
    settings: OAuthSettings, key_pair: tuple[str, str]
) -> None:
    assertion = sign(claims(), key_pair[0])
    for now in (NOW - 5 - CLOCK_LEEWAY, NOW + 55 + CLOCK_LEEWAY - 1):
        assert verify_assertion(assertion, settings, {AUD}, now)["iss"] == CLIENT


def test_a_long_lived_or_future_assertion_is_refused(
    settings: OAuthSettings, key_pair: tuple[str, str]
) -> None:
    long = refusal(sign(claims(exp=int(NOW) + 3600), key_pair[0]), settings)
    assert (long.status, long.error) == (400, "invalid_request")
    assert long.description not in ("Token is expired", "Token used before issued")
    later = refusal(sign(claims(nbf=int(NOW) + 30), key_pair[0]), settings)
    assert later.description == "Token used before issued"


def test_own_urls_name_this_server_only() -> None:
    assert own_urls("127.0.0.1", 8787) == {"http://127.0.0.1:8787", "http://localhost:8787"}
    assert own_urls("10.1.2.3", 80) == {"http://10.1.2.3:80"}


def test_a_jti_is_remembered_until_its_assertion_expires() -> None:
    seen = SeenAssertions()
    assert seen.first_use("a", exp=NOW + 55, now=NOW)
    assert not seen.first_use("a", exp=NOW + 55, now=NOW + 50)
    assert not seen.first_use("a", exp=NOW + 55, now=NOW + 55 + CLOCK_LEEWAY)
    assert seen.first_use("a", exp=NOW + 200, now=NOW + 56 + CLOCK_LEEWAY)


def test_settings_refuse_a_key_that_is_not_an_rsa_public_key(
    key_pair: tuple[str, str], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="not a PEM public key"):
        load_public_key(key_pair[0])
    with pytest.raises(ValueError, match="cannot read"):
        OAuthSettings.from_file(CLIENT, KID, tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="TTL"):
        OAuthSettings(CLIENT, KID, load_public_key(key_pair[1]), token_ttl=0)


# -- POST /token and bearer tokens, over HTTP ---------------------------------------------------


@pytest.fixture
def oauth_collector(make_collector: Callable[..., Collector], settings: OAuthSettings) -> Collector:
    return make_collector(oauth=settings)


def token_request(url: str, assertion: str | None = None, **fields: str) -> Reply:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "scope": "tracking_api:write",
        **fields,
    }
    if assertion is not None:
        form["client_assertion"] = assertion
    return call(url, "POST", "/token", urlencode(form).encode(), {"Content-Type": FORM_TYPE})


def batch(url: str, token: str) -> Reply:
    return post(
        url, "/v1/batch", {"batch": [track()]}, headers={"Authorization": f"Bearer {token}"}
    )


def test_a_token_is_issued_and_accepted_on_the_api(
    oauth_collector: Collector, key_pair: tuple[str, str]
) -> None:
    url = oauth_collector.url
    reply = token_request(url, sign(claims(url), key_pair[0]))
    assert reply.status == 200, reply.body
    body = reply.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("Bearer", TTL)
    assert len(body["access_token"]) >= 32
    assert reply.headers["cache-control"] == "no-store"
    assert reply.headers["date"].endswith(" GMT")
    assert batch(url, body["access_token"]).status == 200
    assert len(oauth_collector.events()) == 1
    status = call(url, "GET", "/api/oauth").json()
    assert (status["issued"], status["refused"]) == (1, {})
    [issued] = status["recent"]
    assert (issued["number"], issued["uses"], issued["expires_at"]) == (1, 1, NOW + TTL)
    assert body["access_token"] not in str(status)


def test_the_localhost_name_of_the_collector_is_a_good_audience(
    oauth_collector: Collector, key_pair: tuple[str, str]
) -> None:
    aud = f"http://localhost:{oauth_collector.port}/"
    assert token_request(oauth_collector.url, sign(claims(aud), key_pair[0])).status == 200


def test_a_replayed_assertion_is_refused(
    oauth_collector: Collector, key_pair: tuple[str, str]
) -> None:
    assertion = sign(claims(oauth_collector.url), key_pair[0])
    assert token_request(oauth_collector.url, assertion).status == 200
    replay = token_request(oauth_collector.url, assertion)
    assert replay.status == 401
    assert replay.json()["error"] == "invalid_client"
    assert "replayed" in replay.json()["error_description"]
    assert oauth_collector.oauth is not None
    assert (oauth_collector.oauth.issued, oauth_collector.oauth.refused) == (
        1,
        {"invalid_client": 1},
    )


@pytest.mark.parametrize(
    ("aud", "kid", "iss"),
    [("http://127.0.0.1:1", KID, CLIENT), (None, "kid-2", CLIENT), (None, KID, "client-2")],
    ids=["aud", "kid", "iss"],
)
def test_wrong_aud_kid_or_iss_gets_401_invalid_client(
    oauth_collector: Collector, key_pair: tuple[str, str], aud: str | None, kid: str, iss: str
) -> None:
    assertion = sign(claims(aud or oauth_collector.url, iss=iss), key_pair[0], kid)
    reply = token_request(oauth_collector.url, assertion)
    assert (reply.status, reply.json()["error"]) == (401, "invalid_client")
    assert oauth_collector.oauth is not None and oauth_collector.oauth.issued == 0


def test_an_expired_assertion_gets_400_token_is_expired(
    oauth_collector: Collector, key_pair: tuple[str, str], clock: Clock
) -> None:
    clock.now = NOW + 3600
    reply = token_request(oauth_collector.url, sign(claims(oauth_collector.url), key_pair[0]))
    assert reply.status == 400
    assert reply.json() == {"error": "invalid_request", "error_description": "Token is expired"}


@pytest.mark.parametrize(
    ("fields", "content_type", "error"),
    [
        ({"grant_type": "password"}, FORM_TYPE, "unsupported_grant_type"),
        ({"grant_type": ""}, FORM_TYPE, "invalid_request"),
        ({"client_assertion_type": "urn:other"}, FORM_TYPE, "invalid_request"),
        ({"client_assertion": ""}, FORM_TYPE, "invalid_request"),
        ({}, "application/json", "invalid_request"),
    ],
)
def test_a_malformed_token_request_gets_400(
    oauth_collector: Collector, fields: dict[str, str], content_type: str, error: str
) -> None:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": "x.y.z",
        **fields,
    }
    body = urlencode(form).encode()
    reply = call(oauth_collector.url, "POST", "/token", body, {"Content-Type": content_type})
    assert (reply.status, reply.json()["error"]) == (400, error)
    assert reply.json()["error_description"]


def test_a_repeated_parameter_gets_400(oauth_collector: Collector) -> None:
    body = b"grant_type=client_credentials&grant_type=client_credentials"
    reply = call(oauth_collector.url, "POST", "/token", body, {"Content-Type": FORM_TYPE})
    assert (reply.status, reply.json()["error"]) == (400, "invalid_request")
    assert "grant_type" in reply.json()["error_description"]


def test_an_expired_unknown_or_revoked_token_gets_401_on_the_api(
    oauth_collector: Collector, key_pair: tuple[str, str], clock: Clock
) -> None:
    url = oauth_collector.url

    def fresh_token() -> str:
        reply = token_request(url, sign(claims(url, at=clock.now), key_pair[0]))
        token: str = reply.json()["access_token"]
        return token

    token = fresh_token()
    clock.now += TTL - 1
    assert batch(url, token).status == 200
    clock.now += 1
    expired = batch(url, token)
    assert expired.status == 401
    assert expired.json() == {"code": "unauthorized", "message": "invalid or expired access token"}
    assert batch(url, "made-up").status == 401
    token = fresh_token()
    assert post(url, "/api/oauth/revoke", {}).json() == {"revoked": 1}
    assert batch(url, token).status == 401
    assert len(oauth_collector.events()) == 1
    assert oauth_collector.oauth is not None
    assert oauth_collector.oauth.refused == {"bearer": 3}


def test_without_oauth_there_is_no_token_endpoint_and_no_bearer(
    make_collector: Callable[..., Collector],
) -> None:
    plain = make_collector()
    assert token_request(plain.url, "x.y.z").status == 404
    assert batch(plain.url, "anything").status == 401


def test_the_token_endpoint_is_subject_to_fault_injection(oauth_collector: Collector) -> None:
    oauth_collector.faults.update({"fail_rate": 1.0, "fail_status": 503, "retry_after": 2})
    reply = token_request(oauth_collector.url, "x.y.z")
    assert (reply.status, reply.headers["retry-after"]) == (503, "2")


def test_the_command_refuses_incomplete_or_unreadable_oauth_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "e.db")
    assert collector_main(["--db", db, "--port", "0", "--oauth-client-id", CLIENT]) == 2
    assert "go together" in capsys.readouterr().err
    missing = str(tmp_path / "missing.pem")
    args = ["--oauth-client-id", CLIENT, "--oauth-key-id", KID, "--oauth-public-key", missing]
    assert collector_main(["--db", db, "--port", "0", *args]) == 2
    assert "cannot read the public key" in capsys.readouterr().err
