"""Bounded inflation: a gzip bomb costs at most the limit in memory."""

from __future__ import annotations

import gzip
import tracemalloc

import pytest

from segment_clone.collector.limits import MAX_BODY_BYTES, inflate
from segment_clone.collector.routing import HTTPError

from .test_ingest import gzip_bomb


def test_inflate_round_trips_bodies_up_to_the_limit() -> None:
    body = b"x" * MAX_BODY_BYTES
    assert inflate(gzip.compress(body)) == body


def test_a_gzip_bomb_is_stopped_without_inflating_it() -> None:
    bomb = gzip_bomb(64 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(HTTPError) as raised:
            inflate(bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert raised.value.status == 413
    assert peak < 4 * MAX_BODY_BYTES  # the bomb inflates to 64 MiB
