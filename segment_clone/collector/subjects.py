"""What a tracking plan checks a stored message as: its kind, its key and a Segment-shaped view.

A plan speaks Segment's language (``properties.*`` of a track event, ``traits.*`` of an
identify or group). Segment messages are checked as they are; Mixpanel records are checked as
their Segment equivalent, and the fields of their violations are named as in the record
(``$set.plan``, ``properties.distinct_id``), so the one plan covers both APIs.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

from .plan import Plan, Violation

BLOCKS = {
    "track": "properties",
    "page": "properties",
    "screen": "properties",
    "identify": "traits",
    "group": "traits",
}
"""Where each Segment kind keeps the fields a plan describes."""
MIXPANEL_PLAIN = frozenset({"token", "distinct_id", "time"})
"""Mixpanel properties set by the library, not by the caller (with those named ``$*``,
``mp_*``); they are left out of the view so that a strict plan does not flag them."""
SEGMENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})
NO_RENAMES: Mapping[str, str] = MappingProxyType({})


class Subject(NamedTuple):
    """A message as a plan sees it (a tuple: one is made for every message checked)."""

    kind: str
    key: str | None
    view: Mapping[str, Any]
    renames: Mapping[str, str] = NO_RENAMES
    """Field prefixes of the view and what the stored record calls them."""

    def check(self, plan: Plan) -> list[Violation]:
        found = plan.check(self.kind, self.key, self.view)
        return [self._renamed(v) for v in found] if found and self.renames else found

    def _renamed(self, violation: Violation) -> Violation:
        path = violation.field
        for view_name, stored_name in self.renames.items():
            if path == view_name or path.startswith(view_name + "."):
                renamed = stored_name + path[len(view_name) :]
                message = violation.message.replace(path, renamed, 1)
                return Violation(violation.type, renamed, message)
        return violation


def segment_subject(message: Mapping[str, Any]) -> Subject:
    return Subject(*_segment_view(str(message.get("type")), message))


def segment_violations(plan: Plan, kind: str, message: Mapping[str, Any]) -> list[Violation]:
    """``segment_subject(message).check(plan)``, without the ``Subject``: this runs for every
    Segment message the collector receives under a plan (``kind``: its checked ``type``)."""
    return plan.check(*_segment_view(kind, message))


def _segment_view(
    kind: str, message: Mapping[str, Any]
) -> tuple[str, str | None, Mapping[str, Any]]:
    key = message.get("event") if kind == "track" else message.get("name")
    block = BLOCKS.get(kind)
    view = message if block is None or block in message else {**message, block: {}}
    return kind, key if isinstance(key, str) else None, view


def mixpanel_violations(plan: Plan, type_: str, record: Mapping[str, Any]) -> list[Violation]:
    subject = mixpanel_subject(type_, record)
    return [] if subject is None else subject.check(plan)


def mixpanel_subject(type_: str, record: Mapping[str, Any]) -> Subject | None:
    """Events (``/track``, ``/import``) as track events, ``$set``/``$set_once`` profile updates
    as identifies and ``$set`` group updates as groups; other updates are not checked (None)."""
    if type_ in ("track", "import"):
        props = record.get("properties") or {}
        own = {k: v for k, v in props.items() if not _library_property(k)}
        view = {"type": "track", "event": record.get("event"), "properties": own}
        if "distinct_id" in props:
            view["userId"] = props["distinct_id"]
        return Subject("track", record.get("event"), view, {"userId": "properties.distinct_id"})
    if type_ == "engage":
        op = "$set" if "$set" in record else "$set_once" if "$set_once" in record else None
        if op is None:
            return None
        parts = [record.get("$set_once"), record.get("$set")]
        traits = {k: v for part in parts if isinstance(part, dict) for k, v in part.items()}
        view = {"type": "identify", "userId": record.get("$distinct_id"), "traits": traits}
        return Subject("identify", None, view, {"traits": op, "userId": "$distinct_id"})
    if type_ == "groups" and "$set" in record:
        view = {"type": "group", "groupId": record.get("$group_id"), "traits": record["$set"]}
        return Subject("group", None, view, {"traits": "$set", "groupId": "$group_id"})
    return None


def guess_subject(record: Mapping[str, Any]) -> Subject | None:
    """The subject of a message read from a file, whichever API's shape it has."""
    if record.get("type") in SEGMENT_TYPES:
        return segment_subject(record)
    if "$distinct_id" in record:
        return mixpanel_subject("engage", record)
    if "$group_key" in record:
        return mixpanel_subject("groups", record)
    if isinstance(record.get("event"), str) and isinstance(record.get("properties"), dict):
        return mixpanel_subject("track", record)
    return None


def _library_property(name: str) -> bool:
    return name in MIXPANEL_PLAIN or name.startswith(("$", "mp_"))
