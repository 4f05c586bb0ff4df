"""An experiment on throughput: how much does preparing batch N+1 while batch N is at the
server win, and how much of it does the SDK's path keep? Not run by ``make bench``.

It runs 100,000 ``track()`` calls back to back from one thread, as the throughput benchmark
does, against the sink, in three modes, each in a fresh process, alternating:

- ``sdk``: ``Client`` as shipped (one consumer thread; with gzip it prepares the next batch
  while the current one is at the server, see ``consumer.py``);
- ``bare``: a stand-in consumer doing the same steps in the same order, on one keep-alive
  connection, without the retry engine, the ``request``/``_session`` seams, stats, spool,
  OAuth or proxies: what the steps themselves cost;
- ``lookahead``: the stand-in, but once batch N is sent, while a full batch is queued, it takes
  and encodes (and gzips) batch N+1 before it reads N's answer. One request is in flight at a
  time, on one connection, so batches stay in order.

``lookahead`` against ``bare`` prices the overlap alone; ``sdk`` against ``lookahead`` prices
the production path's checks and seams (the retry engine, the ``requests.Response`` that
``_session.post`` returns, header merging, the idle-connection check). The stand-in gives up on
any answer but 200, so its figures are an upper bound.

    .venv/bin/python benchmarks/lookahead.py --gzip --rounds 4
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import zlib
from functools import partial
from typing import Any

import orjson
from sink import running_sink
from sink_client import SinkClient
from workload import EVENT, USER_IDS, properties

from segment_clone import Client
from segment_clone.consumer import Consumer
from segment_clone.encoding import dumps
from segment_clone.keepalive import _Connection, _read_answer
from segment_clone.request import GZIP_LEVEL, USER_AGENT, _json_array, _session, batch_url
from segment_clone.transport import _request_head
from segment_clone.utils import utc_now_iso

EVENTS = 100_000
MODES = ("sdk", "bare", "lookahead")
READ_TIMEOUT = 15.0


def stand_in(consumer: Consumer, look_ahead: bool) -> None:
    """Deliver batches the SDK's consumer would deliver, with only the steps of the wire."""
    source = consumer._queue()
    url = batch_url(consumer.host)
    origin = _session._origin(url)
    conn = _Connection.open(origin, None, READ_TIMEOUT)
    conn.sock.settimeout(READ_TIMEOUT)
    sent: list[Any] = []

    def read_answer() -> None:
        answer, _ = _read_answer(conn.reader)
        if answer.status != 200:
            raise RuntimeError(f"the sink answered {answer.status}")
        source.task_done(len(sent))
        sent.clear()

    try:
        while consumer.running:
            if sent and not (look_ahead and source.qsize() >= consumer.upload_size):
                read_answer()
            batch = consumer.next()
            if not batch:
                continue
            fragment = orjson.Fragment(_json_array(batch))
            raw = dumps(
                {"batch": fragment, "sentAt": utc_now_iso(), "writeKey": consumer.write_key}
            )
            headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
            if consumer.gzip:
                compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
                raw = compressor.compress(raw) + compressor.flush()
                headers["Content-Encoding"] = "gzip"
            head = _request_head(origin, _session.headers, headers, len(raw))
            if sent:
                read_answer()
            conn.sock.sendall(head + raw)
            sent.extend(batch)
    finally:
        conn.close()
        consumer.stopped.open()


def measure(url: str, mode: str, gzip: bool) -> dict[str, float]:
    """One run in this process: ``EVENTS`` calls, then flush, until the sink counted them."""
    client = Client("lookahead-write-key", host=url, gzip=gzip)
    if mode != "sdk":
        for consumer in client.consumers or []:
            consumer.run = partial(stand_in, consumer, mode == "lookahead")  # type: ignore[method-assign]
    sink = SinkClient(url)
    sink.reset()
    props = properties()
    started, cpu = time.perf_counter(), time.process_time()
    for i in range(EVENTS):
        while not client.track(USER_IDS[i % len(USER_IDS)], EVENT, props)[0]:
            time.sleep(0.005)
    client.flush()
    sink.wait_for(EVENTS)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"events_per_s": EVENTS / wall, "cpu_us": cpu / EVENTS * 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gzip", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:  # one run, in a child
        print(json.dumps(measure(args.url, args.mode, args.gzip)))
        return 0
    runs: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    with running_sink() as url:
        for round_ in range(args.rounds):
            for mode in MODES:
                cmd = [sys.executable, __file__, "--mode", mode, "--url", url]
                out = subprocess.run(cmd + ["--gzip"] * args.gzip, capture_output=True, text=True)
                if out.returncode:
                    raise SystemExit(out.stderr)
                run = json.loads(out.stdout)
                runs[mode].append(run)
                print(
                    f"round {round_ + 1} {mode:9s} {run['events_per_s']:9,.0f} events/s "
                    f"{run['cpu_us']:5.1f} µs CPU per event"
                )
    print(f"gzip {'on' if args.gzip else 'off'}, medians of {args.rounds} rounds:")
    for mode in MODES:
        rate = statistics.median(run["events_per_s"] for run in runs[mode])
        cpu = statistics.median(run["cpu_us"] for run in runs[mode])
        print(f"  {mode:9s} {rate:9,.0f} events/s {cpu:5.1f} µs CPU per event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
