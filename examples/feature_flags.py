"""Mixpanel feature flags against the local collector: no Mixpanel project needed.

Start a collector that serves the definitions in ``examples/feature_flags.json``, then run::

    segment-clone collector --flags examples/feature_flags.json
    python examples/feature_flags.py --api-host http://127.0.0.1:8787

The flags are evaluated locally (definitions fetched once) and remotely (the collector
evaluates them with the same engine); each assigned variant sends a ``$experiment_started``
exposure event, which the collector stores and the debugger shows. ``make demo`` runs this
against a collector that fails a fifth of all requests: a definitions fetch that fails is
retried, and the exposure events are retried by the consumer until they arrive.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from segment_clone.mixpanel import (
    AsyncBufferedConsumer,
    LocalFlagsConfig,
    Mixpanel,
    RemoteFlagsConfig,
)
from segment_clone.mixpanel.flags.types import SelectedVariant, VariantSource

FETCH_ATTEMPTS = 10
USERS = [
    {"distinct_id": "ada", "custom_properties": {"plan": "pro"}},
    {"distinct_id": "grace", "custom_properties": {"plan": "free"}},
    {"distinct_id": "qa-tester"},
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--api-host",
        default=os.environ.get("MIXPANEL_API_HOST", "http://127.0.0.1:8787"),
        help="the collector's URL (default: %(default)s)",
    )
    args = parser.parse_args(argv)

    consumer = AsyncBufferedConsumer(api_host=args.api_host)
    mp = Mixpanel(
        "demo-token",
        consumer=consumer,
        local_flags_config=LocalFlagsConfig(api_host=args.api_host, enable_polling=False),
        remote_flags_config=RemoteFlagsConfig(api_host=args.api_host),
    )
    exposures = 0
    with mp:
        for _ in range(FETCH_ATTEMPTS):  # a failed fetch keeps no definitions: try again
            mp.local_flags.start_polling_for_definitions()
            if mp.local_flags.are_flags_ready():
                break
        for user in USERS:
            for key in ("new_checkout", "button_colour"):
                variant = mp.local_flags.get_variant(key, SelectedVariant(None), user)
                exposures += variant.variant_source == VariantSource.LOCAL
                print(f"local   {user['distinct_id']:<10} {key:<14} {_shown(variant)}")
        for _ in range(FETCH_ATTEMPTS):
            variant = mp.remote_flags.get_variant("button_colour", SelectedVariant(None), USERS[0])
            if variant.variant_source == VariantSource.REMOTE:
                exposures += 1
                break
        print(f"remote  {'ada':<10} {'button_colour':<14} {_shown(variant)}")
    consumer.flush()
    print(f"{exposures} exposure events sent")
    report = os.environ.get("SEGMENT_DEMO_REPORT")
    if report:
        Path(report).write_text(json.dumps({"exposures": exposures}))
    return 0


def _shown(variant: SelectedVariant) -> str:
    if variant.variant_source == VariantSource.FALLBACK:
        reason = variant.fallback_reason.kind if variant.fallback_reason else "?"
        return f"fallback ({reason})"
    return f"{variant.variant_key} = {variant.variant_value!r}"


if __name__ == "__main__":
    raise SystemExit(main())
