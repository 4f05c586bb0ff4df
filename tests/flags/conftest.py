"""Flag definitions for tests, and a Mixpanel whose flag providers talk to the scripted server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest

from segment_clone.mixpanel import LocalFlagsConfig, Mixpanel, RemoteFlagsConfig

from ..mixpanel.conftest import Log
from ..server import ScriptedServer

TOKEN = "flags-token"


def flag(
    key: str = "new_checkout",
    *,
    variants: list[dict[str, Any]] | None = None,
    rollout: list[dict[str, Any]] | None = None,
    test_users: dict[str, str] | None = None,
    context: str = "distinct_id",
    hash_salt: str | None = None,
) -> dict[str, Any]:
    """One definition in the JSON shape of ``/flags/definitions``."""
    return {
        "id": f"id-{key}",
        "name": key,
        "key": key,
        "status": "active",
        "project_id": 1,
        "context": context,
        "experiment_id": f"exp-{key}",
        "is_experiment_active": True,
        "hash_salt": hash_salt,
        "ruleset": {
            "variants": variants
            or [
                {"key": "off", "value": False, "is_control": True, "split": 0.0},
                {"key": "on", "value": True, "is_control": False, "split": 1.0},
            ],
            "rollout": rollout if rollout is not None else [{"rollout_percentage": 1.0}],
            **({"test": {"users": test_users}} if test_users else {}),
        },
    }


def definitions(*flags: dict[str, Any]) -> dict[str, Any]:
    return {"code": 200, "flags": list(flags)}


@pytest.fixture
def make_mp(server: ScriptedServer) -> Iterator[Callable[..., tuple[Mixpanel, Log]]]:
    """``Mixpanel`` instances whose flag providers point at the scripted server and whose
    events land in a recording consumer; their providers are closed at teardown."""
    made: list[Mixpanel] = []

    def make(*, local: bool = True, remote: bool = False, **options: Any) -> tuple[Mixpanel, Log]:
        log = Log()
        config: dict[str, Any] = {"api_host": server.url, **options.pop("config", {})}
        shared = {k: v for k, v in config.items() if k == "request_timeout_in_seconds"}
        mp = Mixpanel(
            TOKEN,
            consumer=log,
            local_flags_config=(
                LocalFlagsConfig(**{"enable_polling": False, **config}) if local else None
            ),
            remote_flags_config=(
                RemoteFlagsConfig(api_host=config["api_host"], **shared) if remote else None
            ),
            **options,
        )
        made.append(mp)
        return mp, log

    yield make
    for mp in made:
        mp.__exit__(None, None, None)
