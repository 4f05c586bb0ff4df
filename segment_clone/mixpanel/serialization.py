"""The upstream JSON conventions: compact output, datetimes without offset or microseconds."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any


class DatetimeSerializer(json.JSONEncoder):
    """Writes ``datetime`` as ``YYYY-MM-DDTHH:MM:SS``, as upstream does (no tz conversion).

    Subclass it and pass the subclass as ``serializer=`` to support more types.
    """

    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return o.strftime("%Y-%m-%dT%H:%M:%S")
        return super().default(o)


def json_dumps(data: Any, cls: type[json.JSONEncoder] | None = None) -> str:
    """Compact JSON (no whitespace), otherwise the stdlib defaults upstream relies on."""
    return json.dumps(data, separators=(",", ":"), cls=cls)


__all__ = ["DatetimeSerializer", "json_dumps"]
