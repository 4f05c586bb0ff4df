"""The collector's feature-flag endpoints over real HTTP: definitions served as Mixpanel's API
serves them, ``/flags`` evaluated with the SDK's engine (so local and remote evaluation agree),
exposures stored like any event, and ``segment-clone collector --flags FILE``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import quote

from segment_clone.collector import Collector
from segment_clone.mixpanel import Consumer, LocalFlagsConfig, Mixpanel, RemoteFlagsConfig
from segment_clone.mixpanel.flags.types import SelectedVariant

from ..api import call, get, post
from ..flags.conftest import definitions, flag
from ..processes import SCRIPT, collector_process

SPLIT = flag(
    "colour",
    variants=[
        {"key": "red", "value": "red", "is_control": True, "split": 0.5},
        {"key": "blue", "value": "blue", "is_control": False, "split": 0.5},
    ],
    rollout=[{"rollout_percentage": 0.8}],
    test_users={"qa": "blue"},
)


def test_definitions_are_served_to_any_origin(tmp_path: Path) -> None:
    with Collector(tmp_path / "e.db", port=0, flags=definitions(SPLIT)).start() as c:
        assert get(c.url, "/flags/definitions?token=t")["flags"] == [SPLIT]
        reply = call(c.url, "GET", "/flags/definitions", headers={"Origin": "http://app.test"})
        assert reply.status == 200
        assert reply.headers["access-control-allow-origin"] in ("*", "http://app.test")


def test_remote_and_local_evaluation_agree(tmp_path: Path) -> None:
    with Collector(tmp_path / "e.db", port=0, flags=definitions(SPLIT)).start() as c:
        mp = Mixpanel(
            "t",
            consumer=Consumer(api_host=c.url),
            local_flags_config=LocalFlagsConfig(api_host=c.url, enable_polling=False),
            remote_flags_config=RemoteFlagsConfig(api_host=c.url),
        )
        with mp:
            mp.local_flags.start_polling_for_definitions()
            users = [{"distinct_id": f"user-{i}"} for i in range(40)] + [{"distinct_id": "qa"}]
            local = [mp.local_flags.get_all_variants(u) for u in users]
            remote = [mp.remote_flags.get_all_variants(u) for u in users]
        pairs = [
            ({k: (v.variant_key, v.is_qa_tester) for k, v in lv.items()},
             {k: (v.variant_key, v.is_qa_tester) for k, v in (rv or {}).items()})
            for lv, rv in zip(local, remote)
        ]  # fmt: skip
        assert all(a == b for a, b in pairs)
        keys = [p[0].get("colour", (None,))[0] for p in pairs]
        assert {"red", "blue", None} <= set(keys)  # both variants and outside the rollout
        assert pairs[-1][0] == {"colour": ("blue", True)}


def test_flag_key_narrows_and_a_bad_context_is_refused(tmp_path: Path) -> None:
    with Collector(tmp_path / "e.db", port=0, flags=definitions(SPLIT, flag())).start() as c:
        context = quote(json.dumps({"distinct_id": "qa"}))
        answer = get(c.url, f"/flags?context={context}&flag_key=new_checkout")
        assert list(answer["flags"]) == ["new_checkout"]
        assert call(c.url, "GET", "/flags?context=%7Bnope").status == 400


def test_exposures_are_stored_as_mixpanel_events(tmp_path: Path) -> None:
    with Collector(tmp_path / "e.db", port=0, flags=definitions(flag())).start() as c:
        mp = Mixpanel(
            "t",
            consumer=Consumer(api_host=c.url),
            local_flags_config=LocalFlagsConfig(api_host=c.url, enable_polling=False),
        )
        with mp:
            mp.local_flags.start_polling_for_definitions()
            mp.local_flags.get_variant("new_checkout", SelectedVariant(None), {"distinct_id": "u"})
        (event,) = c.wait_for(1, event="$experiment_started")
        assert event["properties"]["Experiment name"] == "new_checkout"
        listed = get(c.url, "/api/events?event=%24experiment_started")
        assert listed["total"] == 1


def test_definitions_can_be_replaced_through_the_api(tmp_path: Path) -> None:
    with Collector(tmp_path / "e.db", port=0).start() as c:
        assert get(c.url, "/flags/definitions")["flags"] == []
        assert post(c.url, "/api/flags", [SPLIT]).status == 200
        assert get(c.url, "/api/flags")["flags"] == [SPLIT]
        reply = post(c.url, "/api/flags", {"flags": [{"key": "no ruleset"}]})
        assert reply.status == 400
        assert get(c.url, "/flags/definitions")["flags"] == [SPLIT]


def test_cli_serves_a_definitions_file(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(definitions(SPLIT)))
    with collector_process("--flags", str(path), "--db", str(tmp_path / "e.db")) as running:
        assert get(running.url, "/flags/definitions")["flags"] == [SPLIT]
    path.write_text("{")
    done = subprocess.run(
        [SCRIPT, "collector", "--port", "0", "--flags", str(path), "--db", str(tmp_path / "e.db")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "cannot read flag definitions" in done.stderr
