"""The sink's ceiling: how many events per second it can ingest at most, measured in the same run.

A raw keep-alive client replays one pre-encoded ``/v1/batch`` request of 100 events (the SDKs'
batch size), or with ``--wire mixpanel`` one ``/track`` request of ``LANE_BATCH`` (500) events
as a JSON array (what ``AsyncBufferedConsumer`` posts), as fast as the sink answers, one request
in flight as with one consumer thread. The request is built once, so the client's own cost per
batch is a ``sendall`` and a ``recv``: what is measured is the sink (HTTP parsing, gunzip, JSON,
counting), which bounds any SDK posting to it. ``run.py`` runs this in its own process while
nothing else of the benchmark runs. It times ``--bursts`` bursts of 20,000 events and prints the
best burst's rate (the most the sink can do; on a shared machine the others are what other work
left of it) and the median, as one JSON line.
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import statistics
import sys
import time
from urllib.parse import urlsplit

from sink_client import SinkClient
from workload import EVENT, USER_IDS, properties

from segment_clone.mixpanel.async_consumer import LANE_BATCH

BATCH = 100
MIXPANEL_BATCH = LANE_BATCH
"""What ``AsyncBufferedConsumer`` puts in one ``/track`` by default."""
BURST_EVENTS = 20_000
WARMUP_BATCHES = 50


def mixpanel_body() -> tuple[str, bytes, int]:
    """``MIXPANEL_BATCH`` Mixpanel events as one JSON array, the datetime as
    ``DatetimeSerializer`` writes it."""
    events = [
        {
            "event": EVENT,
            "properties": {
                "token": "bench-write-key",
                "distinct_id": USER_IDS[i % len(USER_IDS)],
                "time": 1715954592.25,
                "$insert_id": f"{i:032x}",
                "mp_lib": "python",
                "$lib_version": "5.4.1",
                **properties(),
            },
        }
        for i in range(MIXPANEL_BATCH)
    ]
    body = json.dumps(events, default=lambda value: value.strftime("%Y-%m-%dT%H:%M:%S"))
    return "/track?verbose=1&ip=0", body.encode(), MIXPANEL_BATCH


def batch_body() -> bytes:
    """100 track messages shaped like a Segment batch, the datetime as ISO text."""
    messages = [
        {
            "type": "track",
            "event": EVENT,
            "userId": USER_IDS[i],
            "properties": properties(),
            "messageId": f"{i:08x}-0000-4000-8000-000000000000",
            "timestamp": "2024-05-17T14:03:12.250+00:00",
            "context": {"library": {"name": "bench-ceiling", "version": "1"}},
            "integrations": {},
        }
        for i in range(BATCH)
    ]
    batch = {"batch": messages, "sentAt": "2024-05-17T14:03:12.250+00:00"}
    return json.dumps(batch, default=lambda value: value.isoformat()).encode()


def request_bytes(host: str, target: str, body: bytes, compressed: bool) -> bytes:
    headers = [
        f"POST {target} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if compressed:
        headers.append("Content-Encoding: gzip")
    return ("\r\n".join(headers) + "\r\n\r\n").encode("ascii") + body


def read_response(sock: socket.socket, pending: bytearray) -> None:
    """Consume one response (status line, headers, ``Content-Length`` body) from ``sock``."""
    while (end := pending.find(b"\r\n\r\n")) < 0:
        pending += sock.recv(65536)
    head = bytes(pending[:end]).decode("latin-1")
    if not head.startswith("HTTP/1.1 200"):
        raise RuntimeError(f"sink answered {head.splitlines()[0]!r}")
    length = next(
        int(line.split(":", 1)[1])
        for line in head.split("\r\n")
        if line.lower().startswith("content-length:")
    )
    while len(pending) < end + 4 + length:
        pending += sock.recv(65536)
    del pending[: end + 4 + length]


def measure(url: str, bursts: int, compressed: bool, wire: str) -> dict[str, float]:
    parts = urlsplit(url)
    target, body, batch = (
        mixpanel_body() if wire == "mixpanel" else ("/v1/batch", batch_body(), BATCH)
    )
    data = gzip.compress(body) if compressed else body
    request = request_bytes(parts.netloc, target, data, compressed)
    burst_batches = BURST_EVENTS // batch
    sink = SinkClient(url)
    rates = []
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pending = bytearray()
        for _ in range(WARMUP_BATCHES):
            sock.sendall(request)
            read_response(sock, pending)
        sink.reset()
        for _ in range(bursts):
            t0 = time.perf_counter()
            for _ in range(burst_batches):
                sock.sendall(request)
                read_response(sock, pending)
            rates.append(burst_batches * batch / (time.perf_counter() - t0))
    sink.wait_for(bursts * burst_batches * batch)
    return {
        "events_per_s": max(rates),
        "median_events_per_s": statistics.median(rates),
        "body_bytes": len(request),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True, help="the sink's base URL")
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--bursts", type=int, default=10)
    parser.add_argument("--wire", choices=("segment", "mixpanel"), default="segment")
    args = parser.parse_args()
    print(json.dumps(measure(args.host, args.bursts, args.gzip, args.wire)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
