"""Segment messages as Mixpanel records, the way Segment's Mixpanel (Actions) destination maps them.

One pure function, :func:`to_mixpanel`: a Segment message (the dict the SDK builds, or a line
of ``segment-clone events``) becomes the records Mixpanel's ingestion API takes, each tagged
with its endpoint. Nothing here reads the clock, a random source or the network, so mapping a
message twice gives the same records, and ``segment-clone map mixpanel`` shows exactly what a
destination would send. The table in ``docs/destinations.md`` is the specification.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import orjson
from dateutil.parser import isoparse

from .user_agent import browser

Endpoint = Literal["import", "track", "engage", "groups"]

MAX_PROPERTIES = 255
"""Mixpanel refuses an event with this many properties or more."""
MAX_RECORD_BYTES = 1024 * 1024
"""Mixpanel refuses a record of 1 MB or more."""
EARLIEST = datetime(1971, 1, 1, tzinfo=timezone.utc)
"""Mixpanel refuses events from before 1971."""
FUTURE_TOLERANCE_MS = 3600 * 1000
"""Mixpanel refuses events more than an hour ahead of its clock."""

_RESERVED = frozenset(
    ("time", "id", "distinct_id", "$insert_id", "$user_id", "$anon_id", "$group_id", "token")
)
"""Keys of the caller's properties that would overwrite the identity or dedupe key: removed."""
_INSERT_ID = re.compile(r"[A-Za-z0-9-]{1,36}")
_CONTEXT: tuple[tuple[str, str, str], ...] = (
    # (context object, its key, the Mixpanel property)
    ("app", "name", "$app_name"),
    ("app", "namespace", "$app_namespace"),
    ("app", "version", "$app_version_string"),
    ("app", "build", "$app_build_number"),
    ("os", "name", "$os"),
    ("os", "version", "$os_version"),
    ("device", "id", "$device"),
    ("device", "type", "$device_type"),
    ("device", "name", "$device_name"),
    ("device", "manufacturer", "$manufacturer"),
    ("device", "model", "$model"),
    ("device", "advertisingId", "$ios_ifa"),
    ("network", "bluetooth", "$bluetooth_enabled"),
    ("network", "carrier", "$carrier"),
    ("network", "cellular", "$cellular_enabled"),
    ("network", "wifi", "$wifi_enabled"),
    ("screen", "width", "$screen_width"),
    ("screen", "height", "$screen_height"),
    ("screen", "density", "$screen_density"),
    ("page", "url", "$current_url"),
    ("page", "referrer", "$referrer"),
    ("location", "country", "mp_country_code"),
    ("location", "region", "$region"),
    ("location", "city", "$city"),
    ("campaign", "source", "utm_source"),
    ("campaign", "medium", "utm_medium"),
    ("campaign", "name", "utm_campaign"),
    ("campaign", "term", "utm_term"),
    ("campaign", "content", "utm_content"),
)
_CONTEXT_SECTIONS: dict[str, tuple[tuple[str, str], ...]] = {}
for _section, _key, _target in _CONTEXT:
    _CONTEXT_SECTIONS[_section] = (*_CONTEXT_SECTIONS.get(_section, ()), (_key, _target))
_CONTEXT_TOP = (("ip", "ip"), ("locale", "$locale"), ("groupId", "$group_id"))
_TRAITS = {
    "email": "$email",
    "firstName": "$first_name",
    "lastName": "$last_name",
    "name": "$name",
    "username": "$username",
    "phone": "$phone",
    "avatar": "$avatar",
    "createdAt": "$created",
    "created": "$created",
    "created_at": "$created",
}
"""Segment's reserved traits and Mixpanel's reserved profile properties of the same meaning."""


@dataclass(frozen=True)
class Record:
    """One Mixpanel record and the endpoint that takes it."""

    endpoint: Endpoint
    body: dict[str, Any]


class Refused(ValueError):
    """The message cannot become a record Mixpanel accepts; the text says why."""


@dataclass(frozen=True)
class MappingSettings:
    """The choices Segment's destination offers, with its defaults.

    :param token: the Mixpanel project token, written into every record.
    :param page_names: ``"viewed"`` names a page or screen ``"Viewed {name}"`` (a nameless one
        ``"Loaded a Page"``); ``"loaded"`` always names it ``"Loaded a Page"`` /
        ``"Loaded a Screen"``, as Segment's classic integration did.
    :param group_key: the group key of ``group`` calls (Mixpanel's ``$group_key``).
    :param source_name: written as ``segment_source_name`` on every event when set.
    """

    token: str
    page_names: Literal["viewed", "loaded"] = "viewed"
    group_key: str = "$group_id"
    source_name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.token, str) or not self.token:
            raise ValueError("the Mixpanel project token must be a non-empty string")
        if self.page_names not in ("viewed", "loaded"):
            raise ValueError(f"page_names must be 'viewed' or 'loaded', not {self.page_names!r}")
        if not isinstance(self.group_key, str) or not self.group_key:
            raise ValueError("group_key must be a non-empty string")


def to_mixpanel(
    message: Mapping[str, Any],
    settings: MappingSettings,
    *,
    now_ms: int | None = None,
    measure: bool = True,
) -> list[Record]:
    """The Mixpanel records of one Segment message, or :class:`Refused` with the reason.

    ``now_ms`` (the caller's clock, in milliseconds) enables Mixpanel's check on events from
    the future; without it only the 1971 floor is checked, and the result depends on nothing
    but its arguments. ``measure=False`` leaves the 1 MB check to :func:`encode_record`, for a
    caller that encodes the records anyway (a destination's lane), so none is encoded twice.
    """
    kind = message.get("type")
    if kind in ("track", "page", "screen"):
        event = _event(message, settings, _event_name(message, settings))
        return [_check(Record("import", event), now_ms, measure)]
    if kind == "identify":
        return _identify(message, settings, measure)
    if kind == "group":
        return [_check(_group(message, settings), now_ms, measure)]
    if kind == "alias":
        return [_check(_alias(message, settings), now_ms, measure)]
    raise Refused(f"a message of type {kind!r} has no Mixpanel mapping")


def _event_name(message: Mapping[str, Any], settings: MappingSettings) -> str:
    kind = message["type"]
    if kind == "track":
        event = message.get("event")
        if not isinstance(event, str) or not event:
            raise Refused("a track message needs an 'event' name")
        return event
    name = message.get("name")
    if settings.page_names == "viewed" and isinstance(name, str) and name:
        return f"Viewed {name}"
    return "Loaded a Page" if kind == "page" else "Loaded a Screen"


def _event(message: Mapping[str, Any], settings: MappingSettings, event: str) -> dict[str, Any]:
    user_id, anonymous_id = _ids(message)
    context = _object(message.get("context"))
    props: dict[str, Any] = {
        "token": settings.token,
        "time": _millis(message),
        "distinct_id": user_id if user_id is not None else anonymous_id,
        "$insert_id": insert_id(message),
        "$source": "segment",
    }
    if user_id is not None:
        props["$user_id"] = user_id
    if anonymous_id is not None:
        props["$device_id"] = anonymous_id
    props.update(_context_properties(context))
    if settings.source_name:
        props["segment_source_name"] = settings.source_name
    properties = _object(message.get("properties"))
    if _RESERVED.isdisjoint(properties):  # the usual case: one update, at C speed
        props.update(properties)
    else:
        props.update((k, v) for k, v in properties.items() if k not in _RESERVED)
    return {"event": event, "properties": props}


def _context_properties(context: Mapping[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for section, found in context.items():  # a context holds a few of the table's sections
        pairs = _CONTEXT_SECTIONS.get(section)
        if pairs is None or not found:
            continue
        found = _object(found)
        for key, target in pairs:
            value = found.get(key)
            if value is not None:
                props[target] = value
    for key, target in _CONTEXT_TOP:
        value = context.get(key)
        if value is not None:
            props[target] = value
    user_agent = context.get("userAgent")
    if isinstance(user_agent, str):
        found_browser = browser(user_agent)
        if found_browser is not None:
            props["$browser"] = found_browser[0]
            if found_browser[1] is not None:
                props["$browser_version"] = found_browser[1]
    library = _object(context.get("library"))
    if isinstance(library.get("name"), str):
        props["mp_lib"] = f"Segment: {library['name']}"
    if library.get("version") is not None:
        props["$lib_version"] = library["version"]
    return props


def _identify(message: Mapping[str, Any], settings: MappingSettings, measure: bool) -> list[Record]:
    """``$identify`` when both ids are known (it merges them), then the profile's ``$set``."""
    user_id, anonymous_id = _ids(message)
    records = []
    if user_id is not None and anonymous_id is not None:
        records.append(
            Record(
                "track",
                {
                    "event": "$identify",
                    "properties": {
                        "token": settings.token,
                        "distinct_id": user_id,
                        "$identified_id": user_id,
                        "$anon_id": anonymous_id,
                        "$insert_id": insert_id(message),
                    },
                },
            )
        )
    traits = _object(message.get("traits"))
    if traits:
        profile: dict[str, Any] = {
            "$token": settings.token,
            "$distinct_id": user_id if user_id is not None else anonymous_id,
        }
        ip = _object(message.get("context")).get("ip")
        if ip is not None:
            profile["$ip"] = ip
        profile["$set"] = profile_traits(traits)
        records.append(Record("engage", profile))
    return [_check(r, None, measure) for r in records]


def profile_traits(traits: Mapping[str, Any]) -> dict[str, Any]:
    """Traits as profile properties: reserved names renamed, a name built from its parts."""
    renamed = {_TRAITS.get(k, k): v for k, v in traits.items()}
    if "$name" not in renamed and traits.get("firstName") and traits.get("lastName"):
        renamed["$name"] = f"{traits['firstName']} {traits['lastName']}"
    return renamed


def _group(message: Mapping[str, Any], settings: MappingSettings) -> Record:
    group_id = message.get("groupId")
    if group_id is None or group_id == "":
        raise Refused("a group message needs a 'groupId'")
    return Record(
        "groups",
        {
            "$token": settings.token,
            "$group_key": settings.group_key,
            "$group_id": str(group_id),
            "$set": dict(_object(message.get("traits"))),
        },
    )


def _alias(message: Mapping[str, Any], settings: MappingSettings) -> Record:
    user_id, anonymous_id = _ids(message)
    previous = message.get("previousId")
    if previous is None or previous == "":
        raise Refused("an alias message needs a 'previousId'")
    return Record(
        "track",
        {
            "event": "$create_alias",
            "properties": {
                "token": settings.token,
                "distinct_id": str(previous),
                "alias": user_id if user_id is not None else anonymous_id,
                "$insert_id": insert_id(message),
            },
        },
    )


def insert_id(message: Mapping[str, Any]) -> str:
    """Mixpanel's ``$insert_id``: the messageId when Mixpanel takes it as it is, else a digest.

    Mixpanel takes at most 36 letters, digits and dashes, which the SDK's UUIDs are. Any other
    messageId (or none) becomes 32 hex digits of its SHA-256, so the same message always gets
    the same id, and Mixpanel's deduplication still works across retries.
    """
    message_id = message.get("messageId")
    if isinstance(message_id, str) and _INSERT_ID.fullmatch(message_id):
        return message_id
    seed = message_id if message_id is not None else _json(message)
    return hashlib.sha256(str(seed).encode()).hexdigest()[:32]


def _ids(message: Mapping[str, Any]) -> tuple[str | None, str | None]:
    user_id = message.get("userId")
    anonymous_id = message.get("anonymousId")
    user_id = None if user_id is None or user_id == "" else str(user_id)
    anonymous_id = None if anonymous_id is None or anonymous_id == "" else str(anonymous_id)
    if user_id is None and anonymous_id is None:
        raise Refused("the message has neither a 'userId' nor an 'anonymousId'")
    return user_id, anonymous_id


def _millis(message: Mapping[str, Any]) -> int:
    """The message's time in milliseconds since the epoch, as Mixpanel's ``/import`` wants."""
    stamp = message.get("timestamp") or message.get("originalTimestamp")
    if isinstance(stamp, datetime):
        when = stamp
    elif isinstance(stamp, str):
        when = _parse_time(stamp)
    else:
        raise Refused("the message has no 'timestamp'")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if when < EARLIEST:
        raise Refused(f"the event is from {when.date()}, and Mixpanel refuses events before 1971")
    return int(when.timestamp() * 1000)


def _parse_time(stamp: str) -> datetime:
    """``datetime.fromisoformat`` reads the SDK's own timestamps in a fraction of
    ``isoparse``'s time; ``isoparse`` takes the rest of ISO 8601."""
    try:
        return datetime.fromisoformat(stamp)
    except ValueError:
        pass
    try:
        return isoparse(stamp)
    except (ValueError, OverflowError):
        raise Refused(f"the timestamp {stamp!r} is not an ISO 8601 time") from None


def encode_record(record: Record) -> bytes:
    """The record's JSON as it is sent (UTF-8), or :class:`Refused` at Mixpanel's 1 MB."""
    data = orjson.dumps(record.body, default=str, option=orjson.OPT_NON_STR_KEYS)
    if len(data) >= MAX_RECORD_BYTES:
        raise Refused(f"the record is {len(data)} bytes; Mixpanel takes under {MAX_RECORD_BYTES}")
    return data


def _check(record: Record, now_ms: int | None, measure: bool = True) -> Record:
    props = record.body.get("properties")
    if isinstance(props, dict):
        if len(props) >= MAX_PROPERTIES:
            raise Refused(f"{len(props)} properties: Mixpanel takes fewer than {MAX_PROPERTIES}")
        time = props.get("time")
        if now_ms is not None and isinstance(time, int) and time > now_ms + FUTURE_TOLERANCE_MS:
            raise Refused("the event is more than an hour in the future; Mixpanel refuses it")
    if not measure:
        return record
    size = len(_json(record.body))
    if size >= MAX_RECORD_BYTES:
        raise Refused(f"the record is {size} bytes; Mixpanel takes under {MAX_RECORD_BYTES}")
    return record


def _json(value: Any) -> bytes:
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def _object(value: Any) -> Mapping[str, Any]:
    if type(value) is dict:  # the common case, without the ABC check's cost
        return value
    return value if isinstance(value, Mapping) else {}
