"""What links a Mixpanel event to the Segment message it was made from: one ``$insert_id``.

A Mixpanel destination gives the events it makes of a Segment message the ``$insert_id``
computed by ``insert_id`` of the mapping, and the collector computes it the same way, at
ingest, so that the debugger can open one side from the other (``EventStore.linked``).
Profile (``/engage``) and group (``/groups``) updates carry no ``$insert_id`` and link to
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..destinations.mixpanel_mapping import insert_id


def link_key(source: str, message: Mapping[str, Any]) -> str | None:
    """The ``$insert_id`` of a stored message of ``source`` (``segment`` or ``mixpanel``)."""
    return insert_id(message) if source == "segment" else mixpanel_link(message)


def mixpanel_link(record: Mapping[str, Any]) -> str | None:
    """The ``$insert_id`` of a Mixpanel event, None when it has none (or not as text)."""
    props = record.get("properties")
    key = props.get("$insert_id") if isinstance(props, dict) else None  # parsed JSON
    return key if isinstance(key, str) and key else None
