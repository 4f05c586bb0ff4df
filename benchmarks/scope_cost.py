"""The cost of ``scope`` on ``track()``: outside any scope, inside a request's scope (what the
middleware fills), and inside a nested one. Run: ``.venv/bin/python benchmarks/scope_cost.py``.

The client builds, encodes and returns each message but does not queue it (``send=False``), so
the figure is the caller's work alone, the part a scope changes. Each case runs in rounds,
interleaved, timed in the thread's CPU time, and the median of the rounds' means is reported,
since machines here are noisy.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import segment_clone as analytics
from segment_clone import Client

ROUNDS = 15
CALLS = 20_000
REQUEST = {
    "ip": "203.0.113.7",
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "page": {
        "path": "/signup",
        "referrer": "https://shop.example/pricing",
        "search": "?utm_source=news",
        "url": "https://shop.example/signup?utm_source=news",
    },
    "campaign": {"source": "news"},
    "locale": "en-US",
}


def per_call(client: Client, user_id: str | None, **extra: object) -> float:
    track = client.track
    started = time.thread_time()  # CPU time: other processes on a shared machine count less
    for _ in range(CALLS):
        track(user_id, "Signed Up", {"plan": "pro"}, **extra)
    return (time.thread_time() - started) / CALLS * 1e6


def outside(client: Client) -> float:
    return per_call(client, "user-1")


def by_hand(client: Client) -> float:
    """The same message as in the request's scope, its context passed on the call."""
    return per_call(client, "user-1", anonymous_id="anon-1", context=REQUEST)


def in_scope(client: Client) -> float:
    with analytics.scope(user_id="user-1", anonymous_id="anon-1", context=REQUEST):
        return per_call(client, None)


def nested(client: Client) -> float:
    outer = analytics.scope(anonymous_id="anon-1", context=REQUEST)
    with outer, analytics.scope(user_id="user-1", properties={"source": "web"}):
        return per_call(client, None)


def main() -> None:
    client = Client("wk", send=False)
    cases: dict[str, Callable[[Client], float]] = {
        "outside any scope": outside,
        "context passed by hand": by_hand,
        "in a request's scope": in_scope,
        "in a nested scope": nested,
    }
    rounds: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(ROUNDS):
        for name, case in cases.items():
            rounds[name].append(case(client))
    print(f"track() per call, median of {ROUNDS} rounds of {CALLS} calls (send=False)")
    for name, values in rounds.items():
        print(f"  {name:24} {statistics.median(values):6.2f} µs")
    scope = statistics.median(rounds["in a request's scope"])
    print(
        f"the scope itself: {scope - statistics.median(rounds['context passed by hand']):+.2f} µs"
    )


if __name__ == "__main__":
    main()
