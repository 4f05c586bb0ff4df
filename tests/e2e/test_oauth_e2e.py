"""The SDK's OAuth against the collector's token endpoint, over real sockets: tokens fetched,
shared, refreshed, refused and replaced, and every event stored or reported."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from segment_clone import Client, oauth_manager
from segment_clone.collector import Collector, Faults, FaultSettings
from segment_clone.collector.oauth import OAuthSettings, TokenEndpoint, load_public_key
from segment_clone.errors import FatalError

from ..api import get
from ..keys import make_key_pair
from ..processes import collector_process, run_file
from ..server import wait_until
from .test_demo import ROOT

CLIENT = "client-1"
KID = "kid-1"


class Draws(random.Random):
    """The fault injector's random source: the given draws first, then never a fault."""

    def __init__(self, *draws: float) -> None:
        super().__init__()
        self._draws = list(draws)

    def random(self) -> float:
        return self._draws.pop(0) if self._draws else 0.999


@pytest.fixture
def oauth_collector(
    make_collector: Callable[..., Collector], key_pair: tuple[str, str]
) -> Callable[..., Collector]:
    def make(**kwargs: Any) -> Collector:
        return make_collector(
            oauth=OAuthSettings(CLIENT, KID, load_public_key(key_pair[1])), **kwargs
        )

    return make


@pytest.fixture
def oauth_clients(key_pair: tuple[str, str]) -> Iterator[Callable[..., Client]]:
    """Clients with OAuth credentials for ``url``; each is shut down at teardown."""
    made: list[Client] = []

    def make(url: str, key: str = key_pair[0], **kwargs: Any) -> Client:
        kwargs.setdefault("upload_interval", 0.05)
        kwargs.setdefault("oauth_auth_server", url)
        client = Client("wk", host=url, oauth_client_id=CLIENT, oauth_client_key=key,
                        oauth_key_id=KID, **kwargs)  # fmt: skip
        made.append(client)
        return client

    yield make
    for client in made:
        client.shutdown(timeout=10)


def endpoint(collector: Collector) -> TokenEndpoint:
    assert collector.oauth is not None
    return collector.oauth


def test_events_are_sent_with_a_bearer_token_fetched_once(
    oauth_collector: Callable[..., Collector], oauth_clients: Callable[..., Client]
) -> None:
    collector = oauth_collector()
    client = oauth_clients(collector.url, oauth_auth_server=collector.url + "/")
    sent = [client.track("u1", "Clicked", {"i": i})[1]["messageId"] for i in range(5)]
    assert client.flush(timeout=10) == 0
    assert [m["messageId"] for m in collector.events()] == sent
    status = endpoint(collector).snapshot()
    assert (status["issued"], status["refused"]) == (1, {})
    assert status["recent"][0]["uses"] >= 1


def test_tokens_are_refreshed_before_they_expire(
    tmp_path: Path, key_pair: tuple[str, str], oauth_clients: Callable[..., Client]
) -> None:
    """The real command with ``--oauth-token-ttl 3``: the SDK replaces its token at half-life,
    while the first one is still valid, and the next batch goes out with the new one."""
    pem = tmp_path / "public.pem"
    pem.write_text(key_pair[1])
    options = ("--oauth-client-id", CLIENT, "--oauth-key-id", KID, "--oauth-public-key", str(pem))
    with collector_process(
        "--db", str(tmp_path / "e.db"), *options, "--oauth-token-ttl", "3"
    ) as running:
        client = oauth_clients(running.url)
        client.track("u1", "first")
        assert client.flush(timeout=10) == 0
        manager = client.oauth_manager
        assert manager is not None
        first = manager.get_token()
        wait_until(lambda: manager.get_token() != first)
        client.track("u1", "second")
        assert client.flush(timeout=10) == 0
        events = get(running.url, "/api/events")["events"]
        status = get(running.url, "/api/oauth")
        assert running.stop()[0] == 0
    assert [e["event"] for e in events] == ["first", "second"]
    assert status["token_ttl"] == 3 and status["refused"] == {}
    first_token, *later = status["recent"]
    assert later and later[0]["issued_at"] < first_token["expires_at"]
    assert first_token["uses"] == 1
    assert sum(t["uses"] for t in later) == 1


def test_token_endpoint_failures_are_retried_until_it_recovers(
    oauth_collector: Callable[..., Collector], oauth_clients: Callable[..., Client]
) -> None:
    faults = Faults(FaultSettings(fail_rate=0.5, fail_status=500), rng=Draws(0.0, 0.0))
    collector = oauth_collector(faults=faults)
    errors: list[BaseException] = []
    client = oauth_clients(collector.url, on_error=lambda e, b: errors.append(e))
    client.track("u1", "Clicked")
    assert client.flush(timeout=20) == 0
    assert faults.injected == 2  # both on /token: no batch can go before a token
    assert endpoint(collector).issued == 1
    assert len(collector.events()) == 1
    assert errors == []


def test_a_rate_limited_token_request_waits_for_retry_after(
    oauth_collector: Callable[..., Collector], oauth_clients: Callable[..., Client]
) -> None:
    faults = Faults(FaultSettings(0.5, 429, retry_after=1), rng=Draws(0.0))
    collector = oauth_collector(faults=faults)
    client = oauth_clients(collector.url)
    started = time.monotonic()
    client.track("u1", "Clicked")
    assert client.flush(timeout=20) == 0
    assert time.monotonic() - started >= 1.0
    assert (faults.injected, endpoint(collector).issued) == (1, 1)
    assert len(collector.events()) == 1


def test_an_unknown_key_is_fatal_reported_and_not_retried(
    oauth_collector: Callable[..., Collector], oauth_clients: Callable[..., Client]
) -> None:
    collector = oauth_collector()
    errors: list[tuple[BaseException, int]] = []
    client = oauth_clients(
        collector.url, key=make_key_pair()[0], on_error=lambda e, b: errors.append((e, len(b)))
    )
    client.track("u1", "Clicked")
    assert client.flush(timeout=20) == 0
    [(error, count)] = errors
    assert isinstance(error, FatalError) and count == 1
    assert "invalid_client" in str(error)
    client.track("u1", "Again")  # reported at once, without asking the token endpoint again
    assert client.flush(timeout=20) == 0
    assert len(errors) == 2
    assert client.stats()["dropped"] == {"fatal": 2}
    assert endpoint(collector).snapshot()["refused"] == {"invalid_client": 1}
    assert collector.events() == []
    assert client.shutdown(timeout=10) == 0


def test_a_revoked_token_is_replaced_and_the_batch_delivered(
    oauth_collector: Callable[..., Collector], oauth_clients: Callable[..., Client]
) -> None:
    collector = oauth_collector()
    errors: list[BaseException] = []
    client = oauth_clients(collector.url, on_error=lambda e, b: errors.append(e))
    client.track("u1", "before")
    assert client.flush(timeout=10) == 0
    assert endpoint(collector).revoke_all() == 1
    client.track("u1", "after")
    assert client.flush(timeout=10) == 0
    assert [m["event"] for m in collector.events()] == ["before", "after"]
    status = endpoint(collector).snapshot()
    assert (status["issued"], status["refused"]) == (2, {"bearer": 1})
    assert [t["uses"] for t in status["recent"]] == [1, 1]
    assert errors == [] and client.stats()["delivered"] == 2


class SlowClock:
    """The ``time`` module as the SDK's token code sees it on a host whose clock is behind."""

    monotonic = staticmethod(time.monotonic)

    def __init__(self, behind: float) -> None:
        self.behind = behind

    def time(self) -> float:
        return time.time() - self.behind


def test_a_wrong_client_clock_is_corrected_from_the_date_header(
    oauth_collector: Callable[..., Collector],
    oauth_clients: Callable[..., Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first assertion looks expired to the collector ("Token is expired"); the SDK takes
    the skew from the answer's ``Date`` header and its next assertion is accepted."""
    monkeypatch.setattr(oauth_manager, "time", SlowClock(behind=1000))
    collector = oauth_collector()
    client = oauth_clients(collector.url)
    client.track("u1", "Clicked")
    assert client.flush(timeout=20) == 0
    assert len(collector.events()) == 1
    status = endpoint(collector).snapshot()
    assert (status["issued"], status["refused"]) == (1, {"invalid_request": 1})
    assert client.oauth_manager is not None
    assert 999 <= -client.oauth_manager.clock_skew <= 1001


def test_three_consumers_share_one_token_fetch(
    oauth_collector: Callable[..., Collector], oauth_clients: Callable[..., Client]
) -> None:
    """Every request is answered 100 ms late, so all three consumers wait for the token."""
    collector = oauth_collector(faults=Faults(FaultSettings(delay_ms=100)))
    client = oauth_clients(collector.url, thread=3, upload_size=5)
    for i in range(60):
        client.track("u1", "Clicked", {"i": i})
    assert client.flush(timeout=30) == 0
    assert len(collector.events()) == 60
    status = endpoint(collector).snapshot()
    assert status["issued"] == 1
    assert status["recent"][0]["uses"] >= 12


def test_the_oauth_example_runs_end_to_end() -> None:
    result = run_file(ROOT / "examples" / "oauth.py", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "--oauth-public-key" in result.stdout
    assert "stored 4 events" in result.stdout
    assert "tokens issued: 1, batches they authorised: 1," in result.stdout
    assert result.stdout.rstrip().endswith("OK: every event arrived with a bearer token")
