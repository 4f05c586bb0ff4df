"""Track from one process, send from another (upstream's ``demo/subprocess_consumer.py``).

The tracker process gives ``Mixpanel`` a consumer whose ``send(endpoint, json_message)`` only
puts the message on a ``multiprocessing`` queue; that two-argument ``send`` is the whole
consumer protocol. A sender process drains the queue into a ``BufferedConsumer``, so 100
events leave in 2 requests of 50. It sends to a local collector by default::

    python examples/subprocess_consumer.py --api-host http://127.0.0.1:8787
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import string
from typing import Any

from segment_clone.mixpanel import BufferedConsumer, Mixpanel

EVENTS = 100


class QueueWriteConsumer:
    """Hands each message to another process instead of sending it."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def send(self, endpoint: str, json_message: str) -> None:
        self.queue.put((endpoint, json_message))


def do_tracking(token: str, queue: Any) -> None:
    mp = Mixpanel(token, QueueWriteConsumer(queue))
    distinct_id = "".join(random.choices(string.ascii_uppercase + string.digits, k=32))
    for i in range(EVENTS):
        mp.track(distinct_id, "Tick", {"Tick Number": i})
        print(f"tick {i}")
    queue.put(None)


def do_sending(api_host: str, queue: Any) -> None:
    consumer = BufferedConsumer(api_host=api_host, request_timeout=10)
    payload = queue.get()
    while payload is not None:
        consumer.send(*payload)
        payload = queue.get()
    consumer.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--api-host",
        default=os.environ.get("MIXPANEL_API_HOST", "http://127.0.0.1:8787"),
        help="a Mixpanel host (api.mixpanel.com) or a base URL (default: the local collector)",
    )
    parser.add_argument("--token", default=os.environ.get("MIXPANEL_TOKEN", "demo-token"))
    args = parser.parse_args(argv)

    queue: Any = multiprocessing.Queue()
    sender = multiprocessing.Process(target=do_sending, args=(args.api_host, queue))
    tracker = multiprocessing.Process(target=do_tracking, args=(args.token, queue))
    sender.start()
    tracker.start()
    tracker.join()
    sender.join()
    return 0 if sender.exitcode == tracker.exitcode == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
