"""Local evaluation: fetch the project's flag definitions, then assign variants in-process.

``start_polling_for_definitions()`` fetches once and, with polling on, refreshes on a daemon
thread (``astart_polling_for_definitions()``: on an asyncio task instead). Evaluation never
touches the network and never raises: an unknown flag, a missing context key or a definitions
endpoint that is down, slow or answers garbage all give the caller's fallback. A failed refresh
keeps the definitions already loaded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx

from ... import lifecycle
from ..credentials import ServiceAccountCredentials
from .evaluation import evaluate
from .http import FailureLog, HttpProvider
from .polling import Poller
from .types import (
    ExperimentationFlag,
    ExperimentationFlags,
    FallbackReason,
    LocalFlagsConfig,
    SelectedVariant,
    VariantSource,
)
from .utils import (
    Tracker,
    dispatch_exposure,
    generate_traceparent,
    prepare_common_query_params,
)

logger = logging.getLogger(__name__)


class LocalFeatureFlagsProvider(HttpProvider):
    """``mp.local_flags``: mixpanel 5.4.1's provider of the same name, on our poller."""

    FLAGS_DEFINITIONS_URL_PATH = "/flags/definitions"

    def __init__(
        self,
        token: str,
        config: LocalFlagsConfig,
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
        self._flag_definitions: dict[str, ExperimentationFlag] = {}
        self._are_flags_ready = False
        self._request_params = prepare_common_query_params(
            token, version, credentials.project_id if credentials else None
        )
        super().__init__(token, config, credentials)
        self._poller: Poller | None = None
        self._async_polling_task: asyncio.Task[None] | None = None
        self._failures = FailureLog(logger, "fetch feature flag definitions")
        lifecycle.register(self)

    # -- polling ------------------------------------------------------------------------------

    def start_polling_for_definitions(self) -> None:
        """Fetch the definitions now, then (with ``enable_polling``) every polling interval on a
        daemon thread."""
        self._fetch_flag_definitions()
        if not self._config.enable_polling:
            return
        if self._polling():
            logger.warning("A polling task is already running")
            return
        if self._poller is None:
            self._poller = Poller(
                self._poll, self._config.polling_interval_in_seconds, "mixpanel-flags-poller"
            )
        self._poller.start()

    def stop_polling_for_definitions(self) -> None:
        """Stop the polling thread; it ends at its next wake-up and never blocks this call."""
        if self._poller is not None and self._poller.running:
            self._poller.stop()
        else:
            logger.info("There is no polling task to cancel.")

    async def astart_polling_for_definitions(self) -> None:
        """Fetch the definitions now, then (with ``enable_polling``) every polling interval on
        an asyncio task of the running loop."""
        await self._afetch_flag_definitions()
        if not self._config.enable_polling:
            return
        if self._polling():
            logger.error("A polling task is already running")
            return
        self._async_polling_task = asyncio.create_task(self._apoll())

    async def astop_polling_for_definitions(self) -> None:
        """Cancel the asyncio polling task."""
        if self._async_polling_task is not None:
            self._async_polling_task.cancel()
            self._async_polling_task = None
        else:
            logger.info("There is no polling task to cancel.")

    def _polling(self) -> bool:
        return (self._poller is not None and self._poller.running) or (
            self._async_polling_task is not None
        )

    def _poll(self) -> None:
        # Looked up on each call, so a patched _fetch_flag_definitions is the one that runs.
        self._fetch_flag_definitions()

    async def _apoll(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._config.polling_interval_in_seconds)
                await self._afetch_flag_definitions()
        except asyncio.CancelledError:
            logger.debug("Async polling was cancelled")

    def are_flags_ready(self) -> bool:
        """Whether definitions have been loaded at least once."""
        return self._are_flags_ready

    # -- evaluation ---------------------------------------------------------------------------

    def get_all_variants(self, context: dict[str, Any]) -> dict[str, SelectedVariant]:
        """Every flag ``context`` is assigned a variant of; no exposure events are sent."""
        fallback = SelectedVariant(variant_key=None, variant_value=None)
        variants = {}
        for flag_key in list(self._flag_definitions):
            variant = self.get_variant(flag_key, fallback, context, report_exposure=False)
            if variant.variant_key is not None:
                variants[flag_key] = variant
        return variants

    def get_variant_value(self, flag_key: str, fallback_value: Any, context: dict[str, Any]) -> Any:
        """The value of ``context``'s variant of ``flag_key``, or ``fallback_value``."""
        fallback = SelectedVariant(variant_value=fallback_value)
        return self.get_variant(flag_key, fallback, context).variant_value

    def is_enabled(self, flag_key: str, context: dict[str, Any]) -> bool:
        """Whether ``context``'s variant of ``flag_key`` has the value ``True``."""
        return self.get_variant_value(flag_key, False, context) is True

    def get_variant(
        self,
        flag_key: str,
        fallback_value: SelectedVariant,
        context: dict[str, Any],
        report_exposure: bool = True,
    ) -> SelectedVariant:
        """``context``'s variant of ``flag_key``, tagged ``local``, or ``fallback_value`` tagged
        with the reason; an assigned variant is reported as an exposure unless told not to."""
        started = time.perf_counter()
        flag = self._flag_definitions.get(flag_key)
        if flag is None:
            logger.warning("Cannot find flag definition for key: '%s'", flag_key)
            return fallback_value.as_fallback(FallbackReason.flag_not_found())
        outcome = evaluate(flag, context)
        if isinstance(outcome, FallbackReason):
            if outcome.kind == "MISSING_CONTEXT_KEY":
                logger.warning(
                    "The rollout context '%s' of flag '%s' is not in the context",
                    flag.context,
                    flag_key,
                )
            return fallback_value.as_fallback(outcome)
        if report_exposure:
            self._track_exposure(flag_key, outcome, context, time.perf_counter() - started)
        return outcome.with_source(VariantSource.LOCAL)

    def track_exposure_event(
        self, flag_key: str, variant: SelectedVariant, context: dict[str, Any]
    ) -> None:
        """Report an exposure for ``variant`` (after ``get_all_variants``, which reports none)."""
        self._track_exposure(flag_key, variant, context)

    def _track_exposure(
        self,
        flag_key: str,
        variant: SelectedVariant,
        context: dict[str, Any],
        latency_in_seconds: float | None = None,
    ) -> None:
        distinct_id = context.get("distinct_id")
        if not distinct_id:
            logger.error("Cannot track exposure event without a distinct_id in the context")
            return
        properties: dict[str, Any] = {
            "Experiment name": flag_key,
            "Variant name": variant.variant_key,
            "$experiment_type": "feature_flag",
            "Flag evaluation mode": "local",
            "$experiment_id": variant.experiment_id,
            "$is_experiment_active": variant.is_experiment_active,
            "$is_qa_tester": variant.is_qa_tester,
        }
        if latency_in_seconds is not None:
            properties["Variant fetch latency (ms)"] = latency_in_seconds * 1000
        dispatch_exposure(self._tracker, self._config.exposure_executor, distinct_id, properties)

    # -- fetching -----------------------------------------------------------------------------

    def _fetch_flag_definitions(self) -> None:
        try:
            self._load(self._sync_client.get(**self._request()))
        except Exception as error:
            self._failures.failed(error)

    async def _afetch_flag_definitions(self) -> None:
        try:
            self._load(await self._async_client.get(**self._request()))
        except Exception as error:
            self._failures.failed(error)

    def _request(self) -> dict[str, Any]:
        return {
            "url": self.FLAGS_DEFINITIONS_URL_PATH,
            "params": self._request_params,
            "headers": {"traceparent": generate_traceparent()},
        }

    def _load(self, response: httpx.Response) -> None:
        """Replace the definitions with the response's (variants sorted by key, as the
        assignment expects); raises, keeping the old ones, for an error status or a body that
        is not a definitions document."""
        response.raise_for_status()
        parsed = ExperimentationFlags.from_dict(response.json())
        definitions = {}
        for flag in parsed.flags:
            flag.ruleset.variants.sort(key=lambda variant: variant.key)
            definitions[flag.key] = flag
        self._flag_definitions = definitions
        self._are_flags_ready = True
        self._failures.succeeded()
        logger.debug("Fetched %s flag definitions", len(definitions))

    # -- closing ------------------------------------------------------------------------------

    def _at_exit(self) -> None:
        if self._poller is not None:
            self._poller.stop()

    def _after_fork(self) -> None:
        """In a forked child: fresh HTTP clients (the parent's pooled sockets are not its own),
        then a polling thread of its own if the parent was polling."""
        self._open_clients()
        if self._poller is not None:
            self._poller.after_fork()

    def _stop(self) -> None:
        self.stop_polling_for_definitions()

    async def _astop(self) -> None:
        await self.astop_polling_for_definitions()
        self.stop_polling_for_definitions()
