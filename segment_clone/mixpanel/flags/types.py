"""The flag definitions, configurations and results, with the names and fields of mixpanel 5.4.1.

Payloads from the API are read leniently: keys a dataclass does not declare are skipped, so a
field Mixpanel adds later never breaks parsing; a missing required field raises ``TypeError``.
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

MIXPANEL_DEFAULT_API_ENDPOINT = "api.mixpanel.com"

_T = TypeVar("_T")


def _build(cls: type[_T], payload: dict[str, Any], **nested: Any) -> _T:
    """``cls`` from the declared keys of ``payload``; ``nested`` replaces raw nested models."""
    names = {field.name for field in dataclasses.fields(cls)}  # type: ignore[arg-type]
    known = {key: value for key, value in payload.items() if key in names}
    return cls(**{**known, **nested})


@dataclass
class FlagsConfig:
    """Where the flag endpoints are and how long a request may take.

    ``exposure_executor``, when set, sends exposure events from its threads so that an
    evaluation never waits for the consumer; ``None`` sends them on the calling thread.
    """

    api_host: str = MIXPANEL_DEFAULT_API_ENDPOINT
    request_timeout_in_seconds: int = 10
    exposure_executor: Executor | None = None


@dataclass
class LocalFlagsConfig(FlagsConfig):
    """Local evaluation: definitions are fetched, then refreshed every polling interval."""

    enable_polling: bool = True
    polling_interval_in_seconds: int = 60


@dataclass
class RemoteFlagsConfig(FlagsConfig):
    """Remote evaluation: each call asks Mixpanel's ``/flags`` endpoint."""


@dataclass
class Variant:
    key: str
    value: Any
    is_control: bool
    split: float | None = 0.0

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Variant:
        return _build(cls, payload)


@dataclass
class FlagTestUsers:
    """QA testers: distinct id to the key of the variant they always get."""

    users: dict[str, str]

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> FlagTestUsers:
        return _build(cls, payload)


@dataclass
class VariantOverride:
    key: str

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> VariantOverride:
        return _build(cls, payload)


@dataclass
class Rollout:
    """One rollout rule: a share of contexts (0 to 1), optionally narrowed by runtime rules.

    ``runtime_evaluation_definition`` is the legacy exact-match form;
    ``runtime_evaluation_rule`` is JSON-logic and wins when both are present.
    """

    rollout_percentage: float
    runtime_evaluation_definition: dict[str, str] | None = None
    runtime_evaluation_rule: dict[Any, Any] | None = None
    variant_override: VariantOverride | None = None
    variant_splits: dict[str, float] | None = None

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> Rollout:
        override = payload.get("variant_override")
        return _build(
            cls,
            payload,
            variant_override=None if override is None else VariantOverride.from_dict(override),
        )


@dataclass
class RuleSet:
    variants: list[Variant]
    rollout: list[Rollout]
    test: FlagTestUsers | None = None

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> RuleSet:
        test = payload.get("test")
        return _build(
            cls,
            payload,
            variants=[Variant.from_dict(item) for item in payload["variants"]],
            rollout=[Rollout.from_dict(item) for item in payload["rollout"]],
            test=None if test is None else FlagTestUsers.from_dict(test),
        )


@dataclass
class ExperimentationFlag:
    """One flag definition, as ``/flags/definitions`` returns it."""

    id: str
    name: str
    key: str
    status: str
    project_id: int
    ruleset: RuleSet
    context: str
    experiment_id: str | None = None
    is_experiment_active: bool | None = None
    hash_salt: str | None = None

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ExperimentationFlag:
        return _build(cls, payload, ruleset=RuleSet.from_dict(payload["ruleset"]))


class VariantSource:
    """Where a ``SelectedVariant`` came from; ``FallbackReason`` says why for a fallback."""

    LOCAL = "local"
    REMOTE = "remote"
    FALLBACK = "fallback"


@dataclass(frozen=True)
class FallbackReason:
    """Why the caller's fallback was returned; ``message`` names the detail where there is one
    (the backend's answer, the missing context key)."""

    kind: Literal["FLAG_NOT_FOUND", "MISSING_CONTEXT_KEY", "NO_ROLLOUT_MATCH", "BACKEND_ERROR"]
    message: str | None = None

    @classmethod
    def flag_not_found(cls) -> FallbackReason:
        return _FLAG_NOT_FOUND

    @classmethod
    def no_rollout_match(cls) -> FallbackReason:
        return _NO_ROLLOUT_MATCH

    @classmethod
    def missing_context_key(cls, key: str) -> FallbackReason:
        return cls(kind="MISSING_CONTEXT_KEY", message=key)

    @classmethod
    def backend_error(cls, message: str) -> FallbackReason:
        return cls(kind="BACKEND_ERROR", message=message)


_FLAG_NOT_FOUND = FallbackReason(kind="FLAG_NOT_FOUND")
_NO_ROLLOUT_MATCH = FallbackReason(kind="NO_ROLLOUT_MATCH")


@dataclass
class SelectedVariant:
    """An evaluation's result; ``variant_key`` is ``None`` for a caller's fallback."""

    variant_value: Any
    variant_key: str | None = None
    experiment_id: str | None = None
    is_experiment_active: bool | None = None
    is_qa_tester: bool | None = None
    variant_source: str | None = None
    fallback_reason: FallbackReason | None = None

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> SelectedVariant:
        reason = payload.get("fallback_reason")
        return _build(
            cls,
            payload,
            fallback_reason=None if reason is None else _build(FallbackReason, reason),
        )

    def with_source(self, source: str) -> SelectedVariant:
        """A copy tagged with ``source`` and no fallback reason."""
        return dataclasses.replace(self, variant_source=source, fallback_reason=None)

    def as_fallback(self, reason: FallbackReason) -> SelectedVariant:
        """A copy tagged as the fallback, for ``reason``."""
        return dataclasses.replace(
            self, variant_source=VariantSource.FALLBACK, fallback_reason=reason
        )


@dataclass
class ExperimentationFlags:
    flags: list[ExperimentationFlag]

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ExperimentationFlags:
        return cls(flags=[ExperimentationFlag.from_dict(item) for item in payload["flags"]])


@dataclass
class RemoteFlagsResponse:
    """The answer of ``/flags``: the variants the context is enrolled in."""

    code: int
    flags: dict[str, SelectedVariant]

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> RemoteFlagsResponse:
        return cls(
            code=payload["code"],
            flags={key: SelectedVariant.from_dict(item) for key, item in payload["flags"].items()},
        )
