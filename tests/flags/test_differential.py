"""Our variants equal mixpanel 5.4.1's, on definitions and contexts that hypothesis generates.

Upstream is installed, as ``make compat`` fetches it, into a scratch folder (``.compat/``, never
committed) with the exact dependencies it evaluates with (``json-logic==0.7.0a0``, ``six``,
``asgiref``), and imported from the end of ``sys.path`` so that only the modules we lack come
from there. Both providers load the same definitions document through their own parsing and are
asked for the same flag and context; every field of the answer must match. Where upstream
raises instead of answering (a definition it cannot evaluate), ours must answer all the same. The
test is skipped only if the packages cannot be fetched (no network to PyPI).
"""

from __future__ import annotations

import string
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest.mock import Mock

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from segment_clone.mixpanel.flags import json_logic as our_json_logic
from segment_clone.mixpanel.flags.local_feature_flags import LocalFeatureFlagsProvider
from segment_clone.mixpanel.flags.types import LocalFlagsConfig, SelectedVariant
from segment_clone.mixpanel.flags.utils import normalized_hash

ROOT = Path(__file__).resolve().parents[2]
SCRATCH = ROOT / ".compat" / "mixpanel-5.4.1-site"
PACKAGES = ["mixpanel==5.4.1", "json-logic==0.7.0a0", "six==1.17.0", "asgiref==3.13.0"]
SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
FALLBACK = "FALLBACK"


@pytest.fixture(scope="module")
def upstream() -> Iterator[ModuleType]:
    """mixpanel 5.4.1's ``mixpanel.flags`` package (its modules as attributes)."""
    if not (SCRATCH / "mixpanel" / "flags").is_dir():
        done = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--target", str(SCRATCH), *PACKAGES],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.skip(f"cannot fetch {PACKAGES[0]}: {done.stderr.strip()[-300:]}")
    sys.path.append(str(SCRATCH))
    import mixpanel.flags.local_feature_flags
    import mixpanel.flags.types

    yield mixpanel.flags
    # Leave no trace for the tests that follow: upstream's modules and its dependencies go.
    sys.path.remove(str(SCRATCH))
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(SCRATCH)):
            del sys.modules[name]


@pytest.fixture(scope="module")
def providers(upstream: ModuleType) -> Any:
    theirs = upstream.local_feature_flags.LocalFeatureFlagsProvider(
        "t", upstream.types.LocalFlagsConfig(enable_polling=False), "1", Mock()
    )
    ours = LocalFeatureFlagsProvider("t", LocalFlagsConfig(enable_polling=False), "1", Mock())
    yield theirs, ours
    theirs.shutdown()
    ours.shutdown()


# -- generated definitions and contexts ------------------------------------------------------

names = st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=6)
variant_keys = st.sampled_from(["control", "treatment", "A", "b", "Blue", "blue"])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from(
        [
            "pro",
            "PRO",
            "free",
            "1.2.3",
            "v2.0.0-rc1",
            "2026-07-16T00:00:00Z",
            "",
            "1",
            "0",
            "True",
            "1.0",
        ]
    ),
)
PROPERTIES = ["plan", "Plan", "country", "version", "signup", "tags"]
properties = st.sampled_from(PROPERTIES)
coercible = st.sampled_from(["1", "0", "True", "1.0", "", 1, 0, True, False, 1.0, None])
"""Values that JSON-logic's loose operators coerce into each other."""
percent = st.one_of(st.sampled_from([0.0, 1.0, 0.5, 0.25, 100.0]), st.floats(0, 1, allow_nan=False))


variables = st.builds(lambda name: {"var": name}, properties)
numbers = st.one_of(st.integers(-5, 5), st.floats(-5, 5, allow_nan=False))


def _compare(operators: list[str], values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.builds(lambda op, var, value: {op: [var, value]}, st.sampled_from(operators),
                     variables, values)  # fmt: skip


def _custom(operator: str, symbols: list[str], targets: list[Any]) -> st.SearchStrategy[Any]:
    return st.builds(lambda var, symbol, target: {operator: [var, symbol, target]}, variables,
                     st.sampled_from(symbols), st.sampled_from(targets))  # fmt: skip


leaves = st.one_of(
    _compare(["==", "!=", "===", "!=="], scalars),
    _compare(["==", "!=", "<", ">="], coercible),
    _compare(["<", ">", "<=", ">="], numbers),
    st.builds(lambda value, var: {"in": [value, var]}, st.sampled_from(["pro", "x"]), variables),
    st.builds(lambda var: {"in": [var, ["pro", "free", "eu"]]}, variables),
    _custom("semver_compare", ["<", ">", "===", ">=", "!==", "~"], ["1.2.3", "2.0.0-rc1", "v1"]),
    _custom("datetime_compare", ["<", ">=", "==="], [1_784_160_000_000, 0, -1000, 1.5e12]),
    st.builds(lambda var: {"!!": [var]}, variables),
)
rules = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda op, args: {op: args}, st.sampled_from(["and", "or"]),
                  st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda arg: {"!": [arg]}, inner),
    ),
    max_leaves=6,
)  # fmt: skip
"""JSON-logic rules over the context's properties, with Mixpanel's custom operators."""


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(variant_keys, min_size=1, max_size=4, unique_by=str.casefold))
    even = draw(st.booleans())  # equal shares, as the UI makes them, or anything
    splits = [1 / len(keys) if even else draw(percent) for _ in keys]
    variants = [
        {"key": k, "value": draw(scalars), "is_control": i == 0, "split": split}
        for i, (k, split) in enumerate(zip(keys, splits))
    ]
    rollout = []
    for _ in range(draw(st.integers(0, 3))):
        entry: dict[str, Any] = {"rollout_percentage": draw(percent)}
        if draw(st.integers(0, 3)) == 0:
            entry["variant_override"] = {"key": draw(variant_keys)}
        if draw(st.integers(0, 3)) == 0:
            entry["variant_splits"] = {k: draw(percent) for k in draw(st.lists(variant_keys))}
        choice = draw(st.integers(0, 3))
        if choice == 1:
            entry["runtime_evaluation_rule"] = draw(rules)
        elif choice == 2:
            entry["runtime_evaluation_definition"] = draw(
                st.dictionaries(st.sampled_from(["plan", "Plan", "country"]),
                                st.sampled_from(["pro", "PRO", "eu"]), max_size=2)
            )  # fmt: skip
        rollout.append(entry)
    ruleset: dict[str, Any] = {"variants": variants, "rollout": rollout}
    if draw(st.booleans()):
        ruleset["test"] = {"users": draw(st.dictionaries(st.sampled_from(["u1", "u2", "qa"]),
                                                         variant_keys, max_size=2))}  # fmt: skip
    return {
        "id": "1",
        "name": "flag",
        "key": draw(names),
        "status": "active",
        "project_id": 1,
        "context": draw(st.sampled_from(["distinct_id", "company_id"])),
        "experiment_id": draw(st.one_of(st.none(), names)),
        "is_experiment_active": draw(st.one_of(st.none(), st.booleans())),
        "hash_salt": draw(st.one_of(st.none(), st.just(""), names)),
        "ruleset": ruleset,
    }


contexts = st.fixed_dictionaries(
    {
        "distinct_id": st.one_of(st.sampled_from(["u1", "u2", "qa", ""]), names),
        "custom_properties": st.dictionaries(
            properties, st.one_of(scalars, st.just(["pro", "eu"])), max_size=4
        ),
    },
    optional={"company_id": st.one_of(names, st.integers(0, 10**6))},
)


def outcome(provider: Any, key: str, context: dict[str, Any], selected: type) -> Any:
    """Everything a caller can see of ``provider``'s answer, or the exception it raised."""
    try:
        v = provider.get_variant(key, selected(variant_value=FALLBACK), context, False)
    except Exception as error:
        return type(error)
    reason = v.fallback_reason
    return (
        v.variant_key, v.variant_value, v.experiment_id, v.is_experiment_active, v.is_qa_tester,
        v.variant_source, None if reason is None else (reason.kind, reason.message),
    )  # fmt: skip


def answer(document: dict[str, Any]) -> httpx.Response:
    """``document`` as the definitions endpoint's answer."""
    request = httpx.Request("GET", "https://api.mixpanel.com/flags/definitions")
    return httpx.Response(200, json=document, request=request)


@SETTINGS
@given(definition=definitions(), context=contexts)
def test_local_evaluation_equals_upstream(
    upstream: ModuleType, providers: Any, definition: dict[str, Any], context: dict[str, Any]
) -> None:
    theirs, ours = providers
    document = {"flags": [definition]}

    now = datetime.now()
    theirs._handle_response(answer(document), now, now)
    ours._load(answer(document))
    key = definition["key"]
    expected = outcome(theirs, key, context, upstream.types.SelectedVariant)
    got = outcome(ours, key, context, SelectedVariant)
    if isinstance(expected, type):  # upstream raised: ours answers all the same
        assert isinstance(got, tuple), (expected, got)
    else:
        assert got == expected


@SETTINGS
@given(
    rule=rules,
    data=st.fixed_dictionaries(
        {}, optional=dict.fromkeys(PROPERTIES, st.one_of(scalars, coercible))
    ),
)
def test_json_logic_equals_json_logic_0_7_0a0(
    upstream: ModuleType, rule: Any, data: dict[str, Any]
) -> None:
    import json_logic as theirs

    def run(evaluate: Any) -> Any:
        try:
            return ("ok", evaluate(rule, data))
        except Exception:  # evaluation catches any exception: which one does not matter
            return ("raised",)

    assert run(our_json_logic.jsonLogic) == run(theirs.jsonLogic)


VALUES = [None, True, False, 0, 1, -2, 0.0, 1.0, 2.5, "", "0", "1", "1.0", "True", "a", "B",
          [], [1, "a"], {}]  # fmt: skip


def test_every_operator_on_every_pair_equals_json_logic_0_7_0a0(upstream: ModuleType) -> None:
    """Exhaustive where hypothesis would only sample: each operator of the table (and the data
    operators) on every pair of values, including the ones JSON-logic coerces."""
    import json_logic as theirs

    def run(evaluate: Any, rule: Any, data: Any) -> Any:
        try:
            return ("ok", evaluate(rule, data))
        except Exception:  # evaluation catches any exception: which one does not matter
            return ("raised",)

    names = sorted(set(theirs.operations) | {"var", "missing", "missing_some"})
    assert set(our_json_logic.operations) >= set(theirs.operations)
    differences = []
    for name in names:
        for a in VALUES:
            for b in VALUES:
                for rule in ({name: [a, b]}, {name: [a]}, {name: [a, b, a]}):
                    data = {"a": a, "b": [b]}
                    ours = run(our_json_logic.jsonLogic, rule, data)
                    if ours != run(theirs.jsonLogic, rule, data):
                        differences.append(rule)
    assert differences == []


@SETTINGS
@given(key=st.text(max_size=20), salt=st.text(max_size=20))
def test_hash_equals_upstream(upstream: ModuleType, key: str, salt: str) -> None:
    assert normalized_hash(key, salt) == upstream.utils.normalized_hash(key, salt)
