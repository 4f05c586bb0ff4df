"""Lets ``make demo`` check every message an example sent against what the collector stored.

When ``SEGMENT_DEMO_REPORT`` names a file, ``report`` writes the ids of the messages the SDK
accepted, and its ``stats()``, there as JSON. Otherwise it does nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def report(results: Iterable[tuple[bool, dict[str, Any]]], stats: Any, **more: Any) -> None:
    """``more``: what else the example tells ``make demo``, under those names."""
    path = os.environ.get("SEGMENT_DEMO_REPORT")
    if path:
        sent = [msg["messageId"] for ok, msg in results if ok]
        Path(path).write_text(json.dumps({"sent": sent, "stats": stats, **more}))
