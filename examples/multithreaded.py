"""Many application threads sharing one ``Client``: calls never wait on the network.

Eight threads each track events and views as fast as they can; two consumer threads batch them
(gzip on) and deliver them in the background. ``shutdown`` then waits until every message is
delivered or reported to ``on_error``.

    SEGMENT_HOST=http://127.0.0.1:8787 python examples/multithreaded.py
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from demo_report import report

from segment_clone import Client

THREADS = 8
EVENTS_PER_THREAD = 250

failed: list[str] = []


def on_error(exc: BaseException, batch: list[dict[str, Any]]) -> None:
    failed.append(f"{len(batch)} message(s): {exc}")


client = Client(
    os.environ.get("SEGMENT_WRITE_KEY", "demo-write-key"),
    host=os.environ.get("SEGMENT_HOST", "http://127.0.0.1:8787"),
    gzip=True,
    thread=2,
    on_error=on_error,
)


def shopper(n: int, results: list[tuple[bool, dict[str, Any]]]) -> None:
    user = f"shopper-{n}"
    results.append(client.identify(user, {"cohort": n % 3}))
    for i in range(EVENTS_PER_THREAD - 1):
        if i % 10 == 0:
            results.append(client.page(user, "Shop", f"Aisle {i // 10}"))
        else:
            results.append(client.track(user, "Item Viewed", {"item": i, "price": 9.99}))


per_thread: list[list[tuple[bool, dict[str, Any]]]] = [[] for _ in range(THREADS)]
threads = [threading.Thread(target=shopper, args=(n, per_thread[n])) for n in range(THREADS)]
start = time.perf_counter()
for t in threads:
    t.start()
for t in threads:
    t.join()
tracked = time.perf_counter() - start
pending = client.shutdown(timeout=30)
stats = client.stats()
results = [r for rs in per_thread for r in rs]
print(
    f"multithreaded: {len(results)} calls from {THREADS} threads in {tracked * 1000:.0f} ms; "
    f"delivered {stats['delivered']}, retried {stats['retried']}, dropped {stats['dropped']}, "
    f"pending {pending}"
)
for line in failed:
    print(f"  on_error: {line}")
report(results, stats)
