"""The sink's ceiling: how many events per second it can ingest at most, measured in the same run.

A raw keep-alive client replays one pre-encoded ``/v1/batch`` request of 100 events (the SDKs'
batch size) as fast as the sink answers, one request in flight as with one consumer thread. The
request is built once, so the client's own cost per batch is a ``sendall`` and a ``recv``: what
is measured is the sink (HTTP parsing, gunzip, JSON, counting), which bounds any SDK posting to
it. ``run.py`` runs this in its own process while nothing else of the benchmark runs. It times
``--bursts`` bursts of 20,000 events and prints the best burst's rate (the most the sink can do;
on a shared machine the others are what other work left of it) and the median, as one JSON line.
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

BATCH = 100
BURST_BATCHES = 200
WARMUP_BATCHES = 50


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


def request_bytes(host: str, body: bytes, compressed: bool) -> bytes:
    headers = [
        "POST /v1/batch HTTP/1.1",
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


def measure(url: str, bursts: int, compressed: bool) -> dict[str, float]:
    parts = urlsplit(url)
    body = batch_body()
    request = request_bytes(parts.netloc, gzip.compress(body) if compressed else body, compressed)
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
            for _ in range(BURST_BATCHES):
                sock.sendall(request)
                read_response(sock, pending)
            rates.append(BURST_BATCHES * BATCH / (time.perf_counter() - t0))
    sink.wait_for(bursts * BURST_BATCHES * BATCH)
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
    args = parser.parse_args()
    print(json.dumps(measure(args.host, args.bursts, args.gzip)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
