"""One client, two destinations: the same Segment calls delivered to Segment and to Mixpanel.

The local collector speaks both APIs, so it can stand in for both at once, and it links each
Mixpanel event to the Segment message it was made from (by ``$insert_id``)::

    segment-clone collector --port 8787
    python examples/two_destinations.py --url http://127.0.0.1:8787

Then open http://127.0.0.1:8787/ and click a Mixpanel event: "Made from Segment message #N"
opens the Segment message, whose "Sent to Mixpanel as" leads back. ``make demo`` runs this
against a collector that fails a fifth of all requests: each destination retries on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.request
import uuid
from collections import Counter
from typing import Any
from urllib.parse import urlencode

from demo_report import report

from segment_clone import Client
from segment_clone.destinations import Mixpanel, Segment

SHOPPERS = 4
FUNNEL = ("Product Viewed", "Product Added", "Checkout Started", "Order Completed")
TIMEOUT = 30.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("SEGMENT_HOST", "http://127.0.0.1:8787"),
        help="the collector's URL (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    write_key = os.environ.get("SEGMENT_WRITE_KEY", "demo-write-key")

    client = Client(
        destinations=[Segment(write_key, host=args.url), Mixpanel("demo-token", api_host=args.url)]
    )
    run = uuid.uuid4().hex[:8]  # this run's messages, among whatever else the collector holds
    results = []
    for i in range(1, SHOPPERS + 1):
        shopper = f"shopper-{i}-{run}"
        results.append(client.page(shopper, "Shop", "Pricing", {"path": "/pricing"}))
        for step, event in enumerate(FUNNEL):
            results.append(client.track(shopper, event, {"sku": f"sku-{i}", "step": step}))
    pending = client.shutdown(timeout=TIMEOUT)  # delivers what each destination still holds

    sent = sum(ok for ok, _ in results)
    segment = _get(args.url, "/api/events", source="segment", q=run, wait=sent)["events"]
    mixpanel = _get(args.url, "/api/entries", source="mixpanel", q=run, limit=500, wait=sent)
    segment_types = Counter(message["type"] for message in segment)
    mixpanel_types = Counter(entry["type"] for entry in mixpanel["entries"])
    # a Mixpanel record's links are the Segment messages with its $insert_id
    linked = sum(
        bool(_get(args.url, "/api/entry", id=e["id"])["links"]) for e in mixpanel["entries"]
    )
    print(f"Segment   {len(segment)} messages ({_counts(segment_types)})")
    print(f"Mixpanel  {mixpanel['count']} records ({_counts(mixpanel_types)})")
    line = f"{len(segment)} Segment messages, {mixpanel['count']} Mixpanel records, {linked} linked"
    print(f"both      {line}" + (f" ({pending} still pending)" if pending else ""))
    print(f"debugger  {args.url}/?q={run}: click a Mixpanel record, then its Segment message")
    report(results, client.stats(), both=line)
    return 0 if len(segment) == mixpanel["count"] == linked == sent else 1


def _get(url: str, path: str, **params: Any) -> Any:
    if "wait" in params:
        params["timeout"] = TIMEOUT
    with urllib.request.urlopen(f"{url}{path}?{urlencode(params)}", timeout=TIMEOUT + 5) as reply:
        return json.load(reply)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in counter.most_common())


if __name__ == "__main__":
    raise SystemExit(main())
