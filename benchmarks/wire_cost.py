"""What measuring on the wire costs ``track()``: ``encode_message`` now, against the encoding
before issue 27 (one ``orjson.dumps``, UTF-8, datetimes written by orjson alone).
Run: ``.venv/bin/python benchmarks/wire_cost.py``.

Two things changed on the caller's thread: non-ASCII text is ``\\u``-escaped (only when the
bytes are not ASCII), and datetimes go through the encoder's ``default``, which checks their UTC
offset for seconds. Each message kind runs in rounds, both encoders interleaved, and the fastest
round of each is reported: on a shared machine, noise only ever adds time.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import orjson
from workload import EVENT, properties

from segment_clone import Client
from segment_clone.encoding import _default, encode_message

ROUNDS = 40
CALLS = 5_000


def before(msg: dict[str, Any]) -> bytes:
    """The encoding before issue 27: orjson's UTF-8, datetimes natively."""
    return bytes(memoryview(orjson.dumps(msg, default=_default)))


def per_call(encode: Callable[[dict[str, Any]], object], msg: dict[str, Any]) -> float:
    started = time.perf_counter()
    for _ in range(CALLS):
        encode(msg)
    return (time.perf_counter() - started) / CALLS * 1e6


def kinds() -> dict[str, dict[str, Any]]:
    client = Client("wk", send=False)
    ascii_props = properties()
    no_datetime = {k: v for k, v in ascii_props.items() if not isinstance(v, datetime)}
    accents = {**ascii_props, "city": "Z\u00fcrich", "store": "\u6771\u4eac \U0001f600"}
    odd_offset = timezone(timedelta(seconds=3661))
    odd = {**ascii_props, "ordered_at": datetime(1900, 1, 1, tzinfo=odd_offset)}
    cases = {
        "make bench's event (ASCII, one UTC datetime)": ascii_props,
        "the same without the datetime": no_datetime,
        "with non-ASCII text": accents,
        "with an offset that has seconds": odd,
    }
    return {name: client.track("user-00001", EVENT, p)[1] for name, p in cases.items()}


def main() -> None:
    print(f"encode_message, µs per message: fastest of {ROUNDS} rounds of {CALLS:,} calls")
    print(f"{'message':48} {'before':>8} {'now':>8} {'added':>8}")
    for name, msg in kinds().items():
        old, new = [], []
        for _ in range(ROUNDS):
            old.append(per_call(before, msg))
            new.append(per_call(encode_message, msg))
        a, b = min(old), min(new)
        print(f"{name:48} {a:8.2f} {b:8.2f} {b - a:+8.2f}")


if __name__ == "__main__":
    main()
