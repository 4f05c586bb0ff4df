"""Which variant a context gets from a flag definition: one pure function, used by the local
provider and by the collector's ``/flags`` endpoint, so both assign exactly as Mixpanel does.

Order: the flag's context key must be present; a QA tester gets their variant; otherwise the
first rollout whose hash share and runtime rule admit the context picks the variant, by its
override or by the variant hash over the (possibly re-split) variants.
"""

from __future__ import annotations

import logging
from typing import Any, Union

from . import (
    custom_operators,  # noqa: F401 (registers Mixpanel's operators)
    json_logic,
)
from .types import ExperimentationFlag, FallbackReason, Rollout, SelectedVariant
from .utils import normalized_hash

logger = logging.getLogger(__name__)

Outcome = Union[SelectedVariant, FallbackReason]


def evaluate(flag: ExperimentationFlag, context: dict[str, Any]) -> Outcome:
    """The variant ``context`` is assigned, or why it gets the caller's fallback.

    A definition too malformed to evaluate (a variant without a split, no variants) is logged
    and treated as no match: the caller gets its fallback, never an exception.
    """
    context_value = context.get(flag.context)
    if not context_value:
        return FallbackReason.missing_context_key(flag.context)
    try:
        chosen = _test_user_variant(flag, context) or _rollout_variant(flag, context_value, context)
    except Exception:
        logger.exception("Flag %r: its definition could not be evaluated", flag.key)
        return FallbackReason.no_rollout_match()
    return chosen if chosen is not None else FallbackReason.no_rollout_match()


def _named_variant(flag: ExperimentationFlag, key: str) -> SelectedVariant | None:
    """The variant called ``key`` (case-insensitive), marked as a QA tester's as upstream does
    for test users and rollout overrides alike."""
    wanted = key.casefold()
    for variant in flag.ruleset.variants:
        if variant.key.casefold() == wanted:
            return SelectedVariant(
                variant_key=variant.key,
                variant_value=variant.value,
                experiment_id=flag.experiment_id,
                is_experiment_active=flag.is_experiment_active,
                is_qa_tester=True,
            )
    return None


def _test_user_variant(
    flag: ExperimentationFlag, context: dict[str, Any]
) -> SelectedVariant | None:
    testers = flag.ruleset.test.users if flag.ruleset.test else None
    distinct_id = context.get("distinct_id")
    if not testers or not distinct_id:
        return None
    key = testers.get(distinct_id)
    return _named_variant(flag, key) if key else None


def _rollout_variant(
    flag: ExperimentationFlag, context_value: Any, context: dict[str, Any]
) -> SelectedVariant | None:
    subject = str(context_value)
    for index, rollout in enumerate(flag.ruleset.rollout):
        if flag.hash_salt is not None:
            salt = f"{flag.key}{flag.hash_salt}{index}"
        else:
            salt = f"{flag.key}rollout"
        if normalized_hash(subject, salt) < rollout.rollout_percentage and _admits(
            rollout, context
        ):
            return _assigned_variant(flag, subject, rollout)
    return None


def _assigned_variant(flag: ExperimentationFlag, subject: str, rollout: Rollout) -> SelectedVariant:
    if rollout.variant_override is not None:
        overridden = _named_variant(flag, rollout.variant_override.key)
        if overridden is not None:
            return overridden
    position = normalized_hash(subject, f"{flag.key}{flag.hash_salt or ''}variant")
    splits = rollout.variant_splits or {}
    variants = flag.ruleset.variants
    chosen = variants[0]
    upper = 0.0
    for variant in variants:
        chosen = variant
        upper += splits.get(variant.key, variant.split)  # type: ignore[operator]
        if position < upper:
            break
    return SelectedVariant(
        variant_key=chosen.key,
        variant_value=chosen.value,
        experiment_id=flag.experiment_id,
        is_experiment_active=flag.is_experiment_active,
    )


def _admits(rollout: Rollout, context: dict[str, Any]) -> bool:
    """Whether the rollout's runtime rule (JSON-logic, else the legacy exact match) holds for
    the context's ``custom_properties``; with no rule, every context is admitted."""
    if rollout.runtime_evaluation_rule:
        properties = _custom_properties(context)
        if properties is None:
            return False
        try:
            return bool(
                json_logic.jsonLogic(_casefold_leaves(rollout.runtime_evaluation_rule), properties)
            )
        except Exception:
            logger.exception("Error evaluating runtime evaluation rule")
            return False
    if rollout.runtime_evaluation_definition:
        properties = _custom_properties(context)
        if properties is None:
            return False
        return all(
            key in properties
            and isinstance(properties[key], str)
            and properties[key].casefold() == str(expected).casefold()
            for key, expected in rollout.runtime_evaluation_definition.items()
        )
    return True


def _custom_properties(context: dict[str, Any]) -> dict[Any, Any] | None:
    """The context's ``custom_properties`` with keys and string values case-folded, so rules
    match case-insensitively."""
    properties = context.get("custom_properties")
    if not properties or not isinstance(properties, dict):
        return None
    return _casefold_all(properties)  # type: ignore[no-any-return]


def _casefold_all(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, list):
        return [_casefold_all(item) for item in value]
    if isinstance(value, dict):
        return {
            key.casefold() if isinstance(key, str) else key: _casefold_all(item)
            for key, item in value.items()
        }
    return value


def _casefold_leaves(value: Any) -> Any:
    """A rule with its string leaves case-folded; its keys are operators and stay as written."""
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, list):
        return [_casefold_leaves(item) for item in value]
    if isinstance(value, dict):
        return {key: _casefold_leaves(item) for key, item in value.items()}
    return value
