"""Remote evaluation: each call asks the ``/flags`` endpoint which variants a context gets.

A call that fails (network, status, body) returns the caller's fallback tagged
``BACKEND_ERROR`` with the backend's message, never the request URL (its query holds the token),
and never raises. An assigned variant is reported as an exposure through the ``Mixpanel``
instance's ``track``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime
from typing import Any

import httpx

from ..credentials import ServiceAccountCredentials
from .http import FailureLog, HttpProvider, describe
from .types import (
    FallbackReason,
    RemoteFlagsConfig,
    RemoteFlagsResponse,
    SelectedVariant,
    VariantSource,
)
from .utils import (
    EXPOSURE_EVENT,
    Tracker,
    dispatch_exposure,
    generate_traceparent,
    prepare_common_query_params,
)

logger = logging.getLogger(__name__)


class RemoteFeatureFlagsProvider(HttpProvider):
    """``mp.remote_flags``: mixpanel 5.4.1's provider of the same name."""

    FLAGS_URL_PATH = "/flags"

    def __init__(
        self,
        token: str,
        config: RemoteFlagsConfig,
        version: str,
        tracker: Tracker,
        credentials: ServiceAccountCredentials | None = None,
    ) -> None:
        """``tracker`` sends exposure events (``Mixpanel.track``); ``version`` is reported as
        ``lib_version``; ``credentials`` authenticate as a service account instead of the token."""
        self._token = token
        self._config = config
        self._version = version
        self._tracker = tracker
        self._credentials = credentials
        self._project_id = credentials.project_id if credentials else None
        super().__init__(token, config, credentials)
        self._request_params_base = prepare_common_query_params(token, version, self._project_id)
        self._failures = FailureLog(logger, "get remote feature flags")
        self._exposures: set[asyncio.Task[None]] = set()

    # -- synchronous --------------------------------------------------------------------------

    def get_all_variants(self, context: dict[str, Any]) -> dict[str, SelectedVariant] | None:
        """Every variant ``context`` is assigned, tagged ``remote``; ``None`` if the call failed.
        No exposure events are sent."""
        try:
            flags = self._read(self._sync_client.get(**self._request(context)))
        except Exception as error:
            self._failures.failed(error)
            return None
        return {key: variant.with_source(VariantSource.REMOTE) for key, variant in flags.items()}

    def get_variant_value(self, flag_key: str, fallback_value: Any, context: dict[str, Any]) -> Any:
        """The value of ``context``'s variant of ``flag_key``, or ``fallback_value``."""
        fallback = SelectedVariant(variant_value=fallback_value)
        return self.get_variant(flag_key, fallback, context).variant_value

    def get_variant(
        self,
        flag_key: str,
        fallback_value: SelectedVariant,
        context: dict[str, Any],
        reportExposure: bool = True,  # upstream's public name
    ) -> SelectedVariant:
        """``context``'s variant of ``flag_key`` from the server, or ``fallback_value`` tagged
        with the reason; an assigned variant is reported as an exposure unless told not to."""
        started = datetime.now()  # naive local time, as upstream reports it
        try:
            flags = self._read(self._sync_client.get(**self._request(context, flag_key)))
        except Exception as error:
            self._failures.failed(error)
            return fallback_value.as_fallback(FallbackReason.backend_error(describe(error)))
        variant, exposure = self._pick(flag_key, flags, fallback_value, context, started)
        if exposure is not None and reportExposure:
            dispatch_exposure(self._tracker, self._config.exposure_executor, *exposure)
        return variant

    def is_enabled(self, flag_key: str, context: dict[str, Any]) -> bool:
        """Whether ``context``'s variant of ``flag_key`` has the value ``True``."""
        return self.get_variant_value(flag_key, False, context) is True

    def track_exposure_event(
        self, flag_key: str, variant: SelectedVariant, context: dict[str, Any]
    ) -> None:
        """Report an exposure for ``variant`` (after ``get_all_variants``, which reports none)."""
        distinct_id = context.get("distinct_id")
        if not distinct_id:
            logger.error("Cannot track exposure event without a distinct_id in the context")
            return
        properties = self._exposure_properties(flag_key, variant)
        dispatch_exposure(self._tracker, self._config.exposure_executor, distinct_id, properties)

    # -- asynchronous -------------------------------------------------------------------------

    async def aget_all_variants(self, context: dict[str, Any]) -> dict[str, SelectedVariant] | None:
        """``get_all_variants`` without blocking the event loop."""
        try:
            flags = self._read(await self._async_client.get(**self._request(context)))
        except Exception as error:
            self._failures.failed(error)
            return None
        return {key: variant.with_source(VariantSource.REMOTE) for key, variant in flags.items()}

    async def aget_variant_value(
        self, flag_key: str, fallback_value: Any, context: dict[str, Any]
    ) -> Any:
        """``get_variant_value`` without blocking the event loop."""
        fallback = SelectedVariant(variant_value=fallback_value)
        return (await self.aget_variant(flag_key, fallback, context)).variant_value

    async def aget_variant(
        self,
        flag_key: str,
        fallback_value: SelectedVariant,
        context: dict[str, Any],
        reportExposure: bool = True,  # upstream's public name
    ) -> SelectedVariant:
        """``get_variant`` without blocking the event loop; the exposure is sent from a worker
        thread by a task of the running loop."""
        started = datetime.now()
        try:
            flags = self._read(await self._async_client.get(**self._request(context, flag_key)))
        except Exception as error:
            self._failures.failed(error)
            return fallback_value.as_fallback(FallbackReason.backend_error(describe(error)))
        variant, exposure = self._pick(flag_key, flags, fallback_value, context, started)
        if exposure is not None and reportExposure:
            task = asyncio.create_task(self._atrack(*exposure))
            self._exposures.add(task)
            task.add_done_callback(self._exposures.discard)
        return variant

    async def ais_enabled(self, flag_key: str, context: dict[str, Any]) -> bool:
        """``is_enabled`` without blocking the event loop."""
        return (await self.aget_variant_value(flag_key, False, context)) is True

    async def atrack_exposure_event(
        self, flag_key: str, variant: SelectedVariant, context: dict[str, Any]
    ) -> None:
        """``track_exposure_event``, sent from a worker thread."""
        distinct_id = context.get("distinct_id")
        if not distinct_id:
            logger.error("Cannot track exposure event without a distinct_id in the context")
            return
        await self._atrack(distinct_id, self._exposure_properties(flag_key, variant))

    async def _atrack(self, distinct_id: Any, properties: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(
                self._config.exposure_executor,
                self._tracker,
                distinct_id,
                EXPOSURE_EVENT,
                properties,
            )
        except Exception:
            logger.exception("Exposure event failed")

    # -- the request and its answer -----------------------------------------------------------

    def _prepare_query_params(
        self, context: dict[str, Any], flag_key: str | None = None
    ) -> dict[str, str]:
        """The query: the common parameters, the context as JSON text, the flag when one."""
        params = {**self._request_params_base, "context": json.dumps(context)}
        if flag_key is not None:
            params["flag_key"] = flag_key
        return params

    def _request(self, context: dict[str, Any], flag_key: str | None = None) -> dict[str, Any]:
        return {
            "url": self.FLAGS_URL_PATH,
            "params": self._prepare_query_params(context, flag_key),
            "headers": {"traceparent": generate_traceparent()},
        }

    def _read(self, response: httpx.Response) -> dict[str, SelectedVariant]:
        response.raise_for_status()
        flags = RemoteFlagsResponse.from_dict(response.json()).flags
        self._failures.succeeded()
        return flags

    def _pick(
        self,
        flag_key: str,
        flags: dict[str, SelectedVariant],
        fallback: SelectedVariant,
        context: dict[str, Any],
        started: datetime,
    ) -> tuple[SelectedVariant, tuple[Any, dict[str, Any]] | None]:
        """The flag's variant tagged ``remote``, with the ``(distinct_id, properties)`` of its
        exposure when it has a distinct id. The server lists only the flags the context is
        enrolled in, so an absent one is reported as not found."""
        if flag_key not in flags:
            return fallback.as_fallback(FallbackReason.flag_not_found()), None
        variant = flags[flag_key].with_source(VariantSource.REMOTE)
        distinct_id = context.get("distinct_id")
        if not distinct_id:
            return variant, None
        ended = datetime.now()
        return variant, (distinct_id, self._exposure_properties(flag_key, variant, started, ended))

    @staticmethod
    def _exposure_properties(
        flag_key: str,
        variant: SelectedVariant,
        started: datetime | None = None,
        ended: datetime | None = None,
    ) -> dict[str, Any]:
        properties: dict[str, Any] = {
            "Experiment name": flag_key,
            "Variant name": variant.variant_key,
            "$experiment_type": "feature_flag",
            "Flag evaluation mode": "remote",
        }
        if started is not None and ended is not None:
            properties["Variant fetch start time"] = started.isoformat()
            properties["Variant fetch complete time"] = ended.isoformat()
            properties["Variant fetch latency (ms)"] = (ended - started).total_seconds() * 1000
        return properties
