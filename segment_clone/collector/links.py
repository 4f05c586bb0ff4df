"""What links a Mixpanel event to the Segment message it was made from: one ``$insert_id``.

A Mixpanel destination gives the events it makes of a Segment message the ``$insert_id``
computed by ``insert_id`` of the mapping, and the collector computes it the same way, so that
the debugger can open one side from the other. Most messageIds (the SDK's UUIDs) are their own
``$insert_id``: such a message is found by its dedup key, and only the others (a digest) are
indexed by it, which keeps the store's cost of links to the Mixpanel side. Profile
(``/engage``) and group (``/groups``) updates carry no ``$insert_id`` and link to nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..destinations.mixpanel_mapping import insert_id


def indexed_key(source: str, message: Mapping[str, Any]) -> str | None:
    """The ``$insert_id`` a stored message of ``source`` must be indexed by to be found from
    the other side, None when it needs no index (or has no ``$insert_id``)."""
    if source != "segment":
        return mixpanel_link(message)
    key = insert_id(message)
    return None if key == message.get("messageId") else key


def mixpanel_link(record: Mapping[str, Any]) -> str | None:
    """The ``$insert_id`` of a Mixpanel event, None when it has none (or not as text)."""
    props = record.get("properties")
    key = props.get("$insert_id") if isinstance(props, Mapping) else None
    return key if isinstance(key, str) and key else None
