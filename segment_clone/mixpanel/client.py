"""``Mixpanel``: builds each event or profile update and hands it to a consumer.

Message shapes, key order and defaults follow upstream exactly (see the facade's README
section). ``_now``, ``_make_insert_id`` and ``_serializer`` are looked up on the instance at
every call, because upstream's users and tests replace them after construction.
"""

from __future__ import annotations

import json
import logging
import time
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Protocol

from ..hooks import BeforeSendOption, hook_chain, run_hooks
from ..stats import DropReporter, Stats
from ..utils import new_hex_id
from .async_consumer import AsyncBufferedConsumer
from .consumer import Consumer
from .credentials import ServiceAccountCredentials
from .errors import MixpanelException
from .flags.types import LocalFlagsConfig, RemoteFlagsConfig
from .serialization import DatetimeSerializer, encode
from .version import VERSION

if TYPE_CHECKING:
    from .flags.local_feature_flags import LocalFeatureFlagsProvider
    from .flags.remote_feature_flags import RemoteFeatureFlagsProvider

logger = logging.getLogger("mixpanel")

Properties = dict[str, Any]

_REQUIRED = {
    "events": ("event", "properties"),
    "imports": ("event", "properties"),
    "people": ("$token", "$distinct_id"),
    "groups": ("$token", "$group_key", "$group_id"),
}
"""What a message that ``before_send`` returns must still have, per endpoint."""


class EventSender(Protocol):
    """The least a consumer must offer: ``send(endpoint, json_message)``.

    ``import_data`` and ``merge`` also pass ``(api_key, api_secret)`` as a third argument.
    """

    def send(self, endpoint: str, json_message: str, /) -> object: ...


class Mixpanel:
    """Sends events and profile updates for the project ``token`` through ``consumer``.

    ``consumer`` defaults to a synchronous ``Consumer(credentials=credentials)``; pass an
    ``AsyncBufferedConsumer`` for delivery that never blocks the caller. ``alias()`` posts
    through its own fresh ``Consumer()`` to ``api.mixpanel.com``, as upstream; with
    ``alias_uses_consumer=True`` it goes through ``consumer`` (and so its host, e.g. EU or IN
    residency) instead.

    ``local_flags_config``/``remote_flags_config`` turn on Mixpanel's feature flags
    (``mp.local_flags``, ``mp.remote_flags``; they need ``pip install 'segment-clone[flags]'``).
    Their exposure events go through ``track``, so through ``consumer`` and ``before_send``.

    ``before_send`` takes the same hooks as ``segment_clone.Client``; they see each message as
    a dict before it is handed to the consumer. Their drops are counted in an
    ``AsyncBufferedConsumer``'s ``stats()`` and reach its ``on_error``; with other consumers they
    are logged on the ``"mixpanel"`` logger.
    """

    def __init__(
        self,
        token: str,
        consumer: EventSender | None = None,
        serializer: type[json.JSONEncoder] = DatetimeSerializer,
        local_flags_config: LocalFlagsConfig | None = None,
        remote_flags_config: RemoteFlagsConfig | None = None,
        credentials: ServiceAccountCredentials | None = None,
        *,
        alias_uses_consumer: bool = False,
        before_send: BeforeSendOption = None,
    ) -> None:
        if consumer and credentials is not None:
            logger.warning(
                "credentials are ignored when a custom consumer is provided; "
                "pass them to the consumer's constructor instead"
            )
        self._token = token
        self._consumer: EventSender = consumer or Consumer(credentials=credentials)
        self._serializer = serializer
        self._credentials = credentials
        self._alias_uses_consumer = alias_uses_consumer
        self._before_send = hook_chain(before_send)
        self._log_drops = DropReporter(Stats(), None, logger)
        self._local_flags_provider: LocalFeatureFlagsProvider | None = None
        self._remote_flags_provider: RemoteFeatureFlagsProvider | None = None
        if local_flags_config or remote_flags_config:
            local_cls, remote_cls = _flag_providers()
            if local_flags_config:
                self._local_flags_provider = local_cls(
                    token, local_flags_config, VERSION, self.track, credentials
                )
            if remote_flags_config:
                self._remote_flags_provider = remote_cls(
                    token, remote_flags_config, VERSION, self.track, credentials
                )

    def _now(self) -> float:
        return time.time()

    def _make_insert_id(self) -> str:
        """32 hex digits, as upstream's ``uuid.uuid4().hex``, at a third of its cost."""
        return new_hex_id()

    # -- events -------------------------------------------------------------------------------

    def track(
        self,
        distinct_id: Any,
        event_name: str,
        properties: Properties | None = None,
        meta: Properties | None = None,
    ) -> None:
        """Record ``event_name`` for ``distinct_id`` (endpoint ``events``)."""
        event = self._event(distinct_id, event_name, self._now(), properties, meta)
        self._send("events", event)

    def import_data(
        self,
        api_key: str | None,
        distinct_id: Any,
        event_name: str,
        timestamp: float,
        properties: Properties | None = None,
        meta: Properties | None = None,
        api_secret: str | None = None,
    ) -> None:
        """Record an event older than five days (endpoint ``imports``, time = ``timestamp``).

        Prefer ``ServiceAccountCredentials`` on the consumer over ``api_key``/``api_secret``.
        """
        _warn_deprecated_auth(api_key, api_secret)
        event = self._event(distinct_id, event_name, timestamp, properties, meta)
        self._send("imports", event, (api_key, api_secret))

    def alias(self, alias_id: Any, original: Any, meta: Properties | None = None) -> None:
        """Create an alias, synchronously: see the class docstring for where it is sent."""
        event = {
            "event": "$create_alias",
            "properties": {"distinct_id": original, "alias": alias_id, "token": self._token},
        }
        if meta:
            event.update(meta)
        self._send("events", event, consumer=None if self._alias_uses_consumer else Consumer())

    def merge(
        self,
        api_key: str | None,
        distinct_id1: Any,
        distinct_id2: Any,
        meta: Properties | None = None,
        api_secret: str | None = None,
    ) -> None:
        """Merge two distinct ids into one identity (endpoint ``imports``)."""
        _warn_deprecated_auth(api_key, api_secret)
        event = {
            "event": "$merge",
            "properties": {"$distinct_ids": [distinct_id1, distinct_id2], "token": self._token},
        }
        if meta:
            event.update(meta)
        self._send("imports", event, (api_key, api_secret))

    # -- people -------------------------------------------------------------------------------

    def people_set(
        self, distinct_id: Any, properties: Properties, meta: Properties | None = None
    ) -> None:
        return self._people(distinct_id, "$set", properties, meta)

    def people_set_once(
        self, distinct_id: Any, properties: Properties, meta: Properties | None = None
    ) -> None:
        return self._people(distinct_id, "$set_once", properties, meta)

    def people_increment(
        self, distinct_id: Any, properties: Properties, meta: Properties | None = None
    ) -> None:
        return self._people(distinct_id, "$add", properties, meta)

    def people_append(
        self, distinct_id: Any, properties: Properties, meta: Properties | None = None
    ) -> None:
        return self._people(distinct_id, "$append", properties, meta)

    def people_union(
        self, distinct_id: Any, properties: Properties, meta: Properties | None = None
    ) -> None:
        return self._people(distinct_id, "$union", properties, meta)

    def people_unset(
        self, distinct_id: Any, properties: list[str], meta: Properties | None = None
    ) -> None:
        return self._people(distinct_id, "$unset", properties, meta)

    def people_remove(
        self, distinct_id: Any, properties: Properties, meta: Properties | None = None
    ) -> None:
        return self._people(distinct_id, "$remove", properties, meta)

    def people_delete(self, distinct_id: Any, meta: Properties | None = None) -> None:
        return self._people(distinct_id, "$delete", "", meta)

    def people_track_charge(
        self,
        distinct_id: Any,
        amount: float,
        properties: Properties | None = None,
        meta: Properties | None = None,
    ) -> None:
        """Append a transaction; unlike upstream, the caller's ``properties`` is not modified."""
        transaction = {**(properties or {}), "$amount": amount}
        return self._people(distinct_id, "$append", {"$transactions": transaction}, meta)

    def people_clear_charges(self, distinct_id: Any, meta: Properties | None = None) -> None:
        return self._people(distinct_id, "$unset", ["$transactions"], meta)

    def people_update(self, message: Properties, meta: Properties | None = None) -> None:
        """Send a raw profile update (endpoint ``people``) with ``$token`` and ``$time`` added."""
        self._send("people", self._profile(message, meta))

    # -- groups -------------------------------------------------------------------------------

    def group_set(
        self, group_key: str, group_id: Any, properties: Properties, meta: Properties | None = None
    ) -> None:
        return self._group(group_key, group_id, "$set", properties, meta)

    def group_set_once(
        self, group_key: str, group_id: Any, properties: Properties, meta: Properties | None = None
    ) -> None:
        return self._group(group_key, group_id, "$set_once", properties, meta)

    def group_union(
        self, group_key: str, group_id: Any, properties: Properties, meta: Properties | None = None
    ) -> None:
        return self._group(group_key, group_id, "$union", properties, meta)

    def group_unset(
        self, group_key: str, group_id: Any, properties: list[str], meta: Properties | None = None
    ) -> None:
        return self._group(group_key, group_id, "$unset", properties, meta)

    def group_remove(
        self, group_key: str, group_id: Any, properties: Properties, meta: Properties | None = None
    ) -> None:
        return self._group(group_key, group_id, "$remove", properties, meta)

    def group_delete(self, group_key: str, group_id: Any, meta: Properties | None = None) -> None:
        return self._group(group_key, group_id, "$delete", "", meta)

    def group_update(self, message: Properties, meta: Properties | None = None) -> None:
        """Send a raw group update (endpoint ``groups``) with ``$token`` and ``$time`` added."""
        self._send("groups", self._profile(message, meta))

    # -- feature flags and 5.x context-manager hooks -------------------------------------------

    @property
    def local_flags(self) -> LocalFeatureFlagsProvider:
        """The local flags provider; raises ``MixpanelException`` without ``local_flags_config``."""
        if self._local_flags_provider is None:
            raise MixpanelException(
                "No local flags provider initialized. Pass local_flags_config to constructor."
            )
        return self._local_flags_provider

    @property
    def remote_flags(self) -> RemoteFeatureFlagsProvider:
        """The remote flags provider; raises ``MixpanelException`` without
        ``remote_flags_config``."""
        if self._remote_flags_provider is None:
            raise MixpanelException("No remote_flags_config was passed to the constructor")
        return self._remote_flags_provider

    def __enter__(self) -> Mixpanel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stops flag polling and closes the flag providers; like upstream, leaving the block
        does not flush the consumer."""
        for provider in (self._local_flags_provider, self._remote_flags_provider):
            if provider is not None:
                provider.__exit__(*exc_info)

    async def __aenter__(self) -> Mixpanel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """``__exit__`` for ``async with``."""
        for provider in (self._local_flags_provider, self._remote_flags_provider):
            if provider is not None:
                await provider.__aexit__(*exc_info)

    # -- building -----------------------------------------------------------------------------

    def _event(
        self,
        distinct_id: Any,
        event_name: str,
        time_: float,
        properties: Properties | None,
        meta: Properties | None,
    ) -> Properties:
        all_properties = {
            "token": self._token,
            "distinct_id": distinct_id,
            "time": time_,
            "$insert_id": self._make_insert_id(),
            "mp_lib": "python",
            "$lib_version": VERSION,
        }
        if properties:
            all_properties.update(properties)
        event = {"event": event_name, "properties": all_properties}
        if meta:
            event.update(meta)
        return event

    def _profile(self, message: Properties, meta: Properties | None) -> Properties:
        record = {"$token": self._token, "$time": self._now()}
        record.update(message)
        if meta:
            record.update(meta)
        return record

    def _people(
        self, distinct_id: Any, operation: str, value: Any, meta: Properties | None
    ) -> None:
        return self.people_update({"$distinct_id": distinct_id, operation: value}, meta=meta)

    def _group(
        self, group_key: str, group_id: Any, operation: str, value: Any, meta: Properties | None
    ) -> None:
        message = {"$group_key": group_key, "$group_id": group_id, operation: value}
        return self.group_update(message, meta=meta)

    def _send(
        self,
        endpoint: str,
        message: Properties,
        auth: tuple[str | None, str | None] | None = None,
        consumer: EventSender | None = None,
    ) -> None:
        """Encode ``message``, pass it through ``before_send`` and hand it to the consumer:
        as the encoded bytes to an ``AsyncBufferedConsumer``, as JSON text to any other."""
        data = encode(message, self._serializer)
        if self._before_send is not None:
            final = run_hooks(
                self._before_send,
                json.loads(data),
                partial(_check, endpoint),
                self._drop_reporter(),
                debug=False,
            )
            if final is None:
                return
            data = encode(final, self._serializer)
        target = self._consumer if consumer is None else consumer
        json_message = data if isinstance(target, AsyncBufferedConsumer) else data.decode()
        send: Callable[..., object] = target.send
        if auth is None:
            send(endpoint, json_message)
        else:
            send(endpoint, json_message, auth)

    def _drop_reporter(self) -> DropReporter:
        consumer = self._consumer
        if isinstance(consumer, AsyncBufferedConsumer):
            return consumer._reporter  # counted in its stats() and passed to its on_error
        return self._log_drops


FLAGS_EXTRA_MISSING = (
    "feature flags need the 'flags' extra (httpx): pip install 'segment-clone[flags]'"
)


def _flag_providers() -> tuple[type[LocalFeatureFlagsProvider], type[RemoteFeatureFlagsProvider]]:
    """The provider classes, imported only when flags are configured: httpx is an extra."""
    try:
        from .flags.local_feature_flags import LocalFeatureFlagsProvider
        from .flags.remote_feature_flags import RemoteFeatureFlagsProvider
    except ImportError as error:
        if error.name != "httpx":
            raise
        raise MixpanelException(FLAGS_EXTRA_MISSING) from error
    return LocalFeatureFlagsProvider, RemoteFeatureFlagsProvider


def _check(endpoint: str, message: Properties) -> None:
    """Refuse a message that ``before_send`` left without what its endpoint needs."""
    missing = [key for key in _REQUIRED[endpoint] if key not in message]
    if missing:
        raise ValueError(f"a message for {endpoint} needs {', '.join(missing)}")


def _warn_deprecated_auth(api_key: str | None, api_secret: str | None) -> None:
    """One warning per key given, as upstream 5.2+: service accounts replace both."""
    if api_key is not None:
        logger.warning(
            "api_key is deprecated for imports; pass ServiceAccountCredentials to the consumer"
        )
    if api_secret is not None:
        logger.warning(
            "api_secret is deprecated for imports; pass ServiceAccountCredentials to the consumer"
        )


__all__ = ["EventSender", "Mixpanel"]
