"""Every size limit is measured on the bytes that go on the wire, whatever the text: no request
body over 500 KB and no message over 32 KB leaves the SDK, in any mode."""

from __future__ import annotations

import json
import queue
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from segment_clone import Client
from segment_clone.consumer import Consumer
from segment_clone.encoding import encode_message
from segment_clone.wire import (
    BATCH_SIZE_LIMIT,
    MAX_BATCH_BYTES,
    MAX_MSG_SIZE,
    ascii_json,
    batch_cut,
    fit_under,
)

from .server import ScriptedServer, wait_until

API_LIMIT = 500_000
TEXTS = {"cjk": "\u4e2d", "latin": "\u00e9", "emoji": "\U0001f600"}


def test_ascii_json_escapes_as_json_dumps_does() -> None:
    value = {"s": "caf\u00e9 \u4e2d \U0001f600 \u2603", "k\u00e9y": ["\U0010ffff"]}
    data = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    assert ascii_json(data) == json.dumps(value, separators=(",", ":")).encode()
    assert json.loads(ascii_json(data)) == value


def test_ascii_json_returns_ascii_as_it_is() -> None:
    data = b'{"a":"plain \\u00e9"}'
    assert ascii_json(data) is data


def test_upstream_cut_includes_the_message_that_reaches_the_limit() -> None:
    assert batch_cut([100] * 10, 300) == 3
    assert batch_cut([100] * 10, 301) == 4
    assert batch_cut([100] * 3, 10_000) == 3


def test_cut_never_passes_the_hard_cap() -> None:
    # 15 messages come to 474,000 bytes, under upstream's 475,000: upstream takes a 16th and
    # sends 505,600 bytes of messages
    sizes = [31_600] * 20
    assert batch_cut(sizes, BATCH_SIZE_LIMIT) == 15
    assert 15 * 31_601 + 1 <= MAX_BATCH_BYTES < 16 * 31_601 + 1


def test_one_message_always_makes_a_batch() -> None:
    assert batch_cut([MAX_MSG_SIZE], 10) == 1
    assert fit_under([500], 100) == 1
    assert fit_under([40] * 5, 100) == 2


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_message_over_32kb_as_sent_is_refused_at_call_time(name: str) -> None:
    client = Client("wk", send=False)
    char = TEXTS[name]
    base = len(encode_message(client.track("u", "e", {"s": ""})[1])[0])
    per_char = len(ascii_json(char.encode()))
    fits = (MAX_MSG_SIZE - base) // per_char
    ok, msg = client.track("u", "e", {"s": char * fits})
    assert ok and len(encode_message(msg)[0]) <= MAX_MSG_SIZE
    with pytest.raises(RuntimeError, match="32kb"):
        client.track("u", "e", {"s": char * (fits + 1)})


def sizes_sent(server: ScriptedServer) -> list[int]:
    return [len(r.body) for r in server.requests]


@pytest.mark.parametrize(
    ("text", "calls", "requests"),
    [("\u4e2d" * 5000, 40, 3), ("\U0001f600" * 2700, 30, 2), ("x" * 31_200, 32, 3)],
    ids=["cjk", "emoji", "at-the-hard-cap"],
)
@pytest.mark.parametrize("use_gzip", [False, True], ids=["plain", "gzip"])
def test_no_body_over_500kb(
    make_client: Callable[..., Client],
    server: ScriptedServer,
    text: str,
    calls: int,
    requests: int,
    use_gzip: bool,
) -> None:
    # Nothing goes before flush() (a partial batch waits upload_interval); upload_size=15 with
    # gzip: the look-ahead takes full batches, cut by the same rule.
    client = make_client(gzip=use_gzip, upload_size=15 if use_gzip else 100, upload_interval=30)
    for n in range(calls):
        assert client.track("u", "e", {"n": n, "s": text})[0]
    assert client.flush(timeout=30) == 0
    assert max(sizes_sent(server)) <= API_LIMIT
    assert sorted(m["properties"]["n"] for m in server.messages()) == list(range(calls))
    if not use_gzip:
        assert len(server.requests) == requests
        assert all(r.body.isascii() for r in server.requests)


def test_spooled_messages_are_measured_as_sent(
    make_client: Callable[..., Client], server: ScriptedServer, tmp_path: Path
) -> None:
    client = make_client(spool_path=str(tmp_path / "spool"), upload_interval=30)
    for n in range(40):
        assert client.track("u", "e", {"n": n, "s": "\u4e2d" * 5000})[0]
    assert client.flush(timeout=30) == 0
    assert len(server.requests) == 3 and max(sizes_sent(server)) <= API_LIMIT


def test_sync_mode_refuses_and_sends_as_measured(
    make_client: Callable[..., Client], server: ScriptedServer
) -> None:
    client = make_client(sync_mode=True)
    with pytest.raises(RuntimeError):
        client.track("u", "e", {"s": "\u4e2d" * 5500})
    assert client.track("u", "e", {"s": "\u4e2d" * 5000})[0]
    assert len(server.requests) == 1 and len(server.requests[0].body) < 32_000


def test_a_plain_queue_never_makes_a_body_over_500kb(server: ScriptedServer) -> None:
    """Upstream's cut alone, on a ``queue.Queue`` handed to ``Consumer``, would send 16 of
    these messages (over 500 KB); the one that would take the batch over opens the next."""
    q: queue.Queue[Any] = queue.Queue()
    consumer = Consumer(q, "wk", host=server.url, upload_size=1000, upload_interval=0.5)
    for n in range(32):
        q.put(
            {
                "type": "track",
                "event": "e",
                "userId": "u",
                "properties": {"n": n, "s": "x" * 31_200},
            }
        )
    consumer.start()
    try:
        wait_until(lambda: q.unfinished_tasks == 0, timeout=30)
    finally:
        consumer.pause()
        consumer.join(5)
    assert len(server.requests) == 3 and max(sizes_sent(server)) <= API_LIMIT
    assert [m["properties"]["n"] for m in server.messages()] == list(range(32))
