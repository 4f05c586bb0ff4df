"""The Mixpanel face sends mixpanel's library identity, and its lanes measure what they send."""

from __future__ import annotations

import json
from typing import Callable

import segment_clone
import segment_clone.mixpanel as mixpanel
from segment_clone.compat import LIBRARY
from segment_clone.mixpanel import AsyncBufferedConsumer, Consumer, Mixpanel

from ..server import ScriptedServer
from .conftest import delivered

MakeAsync = Callable[..., AsyncBufferedConsumer]


def test_version_is_mixpanels() -> None:
    assert mixpanel.__version__ == "5.4.1"
    # the Segment face likewise sends analytics-python's identity, not segment_clone's own
    assert LIBRARY == {"name": "analytics-python", "version": "2.4.0"}
    assert segment_clone.__version__ != mixpanel.__version__


def test_every_record_carries_the_identity(mp_server: ScriptedServer) -> None:
    consumer = Consumer(api_host=mp_server.url)
    mp = Mixpanel("12345", consumer)
    mp.track("ID", "e", {"a": 1})
    mp.import_data(None, "ID", "old", 1.0, api_secret="S")
    records = delivered(mp_server)
    assert [(r["properties"]["mp_lib"], r["properties"]["$lib_version"]) for r in records] == [
        ("python", "5.4.1"),
        ("python", "5.4.1"),
    ]


def test_lanes_send_and_measure_escaped_json(
    mp_server: ScriptedServer, make_async: MakeAsync
) -> None:
    """A message given as UTF-8 JSON text goes out escaped, the bytes its lane counted."""
    consumer = make_async()
    consumer.send("events", '{"event":"\u4e2d\U0001f600","properties":{"token":"t"}}')
    assert consumer.flush(timeout=10) == 0
    sent = mp_server.requests[0].body
    assert sent == b'[{"event":"\\u4e2d\\ud83d\\ude00","properties":{"token":"t"}}]'
    assert json.loads(sent)[0]["event"] == "\u4e2d\U0001f600"
