"""Message shapes (acceptance checks A1-A15, A24): exact JSON handed to the consumer."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import segment_clone.mixpanel as mixpanel
from segment_clone.mixpanel import (
    Consumer,
    DatetimeSerializer,
    Mixpanel,
    MixpanelException,
    ServiceAccountCredentials,
    json_dumps,
)

from .conftest import Log

LIB = {"mp_lib": "python", "$lib_version": mixpanel.__version__}


def props(**extra: Any) -> dict[str, Any]:
    base = {"token": "12345", "distinct_id": "ID", "time": 1000.1, "$insert_id": "abcdefg"}
    return {**base, **LIB, **extra}


def test_module_surface() -> None:
    import logging

    assert mixpanel.logger is logging.getLogger("mixpanel")
    assert isinstance(mixpanel.__version__, str)
    for name in ("Mixpanel", "Consumer", "BufferedConsumer", "AsyncBufferedConsumer",
                 "MixpanelException", "DatetimeSerializer", "json_dumps",
                 "ServiceAccountCredentials"):  # fmt: skip
        assert name in mixpanel.__all__


def test_a1_track(mp: Mixpanel, log: Log) -> None:
    assert mp.track("ID", "button press", {"size": "big"}) is None
    assert log.calls == [
        ("events", {"event": "button press", "properties": props(size="big")}, None)
    ]
    assert log.arg_counts == [2]
    assert list(log.calls[0][1]["properties"]) == [
        "token", "distinct_id", "time", "$insert_id", "mp_lib", "$lib_version", "size",
    ]  # fmt: skip


def test_a2_caller_properties_override_defaults(mp: Mixpanel, log: Log) -> None:
    mp.track("ID", "e", {"$insert_id": "mine", "time": 5, "token": "other"})
    assert log.calls[0][1]["properties"] == props(
        **{"$insert_id": "mine", "time": 5, "token": "other"}
    )


def test_a3_meta_is_merged_over_the_envelope(mp: Mixpanel, log: Log) -> None:
    mp.track("ID", "e", meta={"ip": 0})
    assert log.calls[0][1] == {"event": "e", "properties": props(), "ip": 0}
    mp.track("ID", "e", {"a": 1}, meta={"properties": {"x": 1}})
    assert log.calls[1][1] == {"event": "e", "properties": {"x": 1}}


def test_a4_real_insert_ids_are_unique_hex(log: Log) -> None:
    mp = Mixpanel("12345", log)
    for _ in range(1000):
        mp.track("ID", "e")
    ids = [call[1]["properties"]["$insert_id"] for call in log.calls]
    assert len(set(ids)) == 1000
    assert all(len(i) == 32 and i == i.lower() and int(i, 16) >= 0 for i in ids)


def test_hooks_are_looked_up_at_each_call(mp: Mixpanel, log: Log) -> None:
    mp.track("ID", "e")
    mp._now = lambda: 2.5  # type: ignore[method-assign]
    mp._make_insert_id = lambda: "other"  # type: ignore[method-assign]
    mp.track("ID", "e")
    assert log.calls[1][1]["properties"]["time"] == 2.5
    assert log.calls[1][1]["properties"]["$insert_id"] == "other"


def test_real_clock_is_float_seconds(log: Log) -> None:
    import time

    before = time.time()
    Mixpanel("12345", log).track("ID", "e")
    assert before <= log.calls[0][1]["properties"]["time"] <= time.time()


def test_a5_import_data(mp: Mixpanel, log: Log) -> None:
    mp.import_data("K", "ID", "ev", 1234.5, {"a": 1}, api_secret="S")
    mp.import_data(None, "ID", "ev", 1234.5)
    expected = {"event": "ev", "properties": props(time=1234.5, a=1)}
    assert log.calls[0] == ("imports", expected, ("K", "S"))
    assert log.calls[1] == (
        "imports",
        {"event": "ev", "properties": props(time=1234.5)},
        (None, None),
    )
    assert log.arg_counts == [3, 3]


def test_a6_merge(mp: Mixpanel, log: Log) -> None:
    mp.merge("K", "d1", "d2")
    body = {"event": "$merge", "properties": {"$distinct_ids": ["d1", "d2"], "token": "12345"}}
    assert log.calls == [("imports", body, ("K", None))]
    mp.merge(None, "d1", "d2", meta={"x": 1}, api_secret="S")
    assert log.calls[1] == ("imports", {**body, "x": 1}, (None, "S"))


def test_import_key_and_secret_warn_once_each(
    mp: Mixpanel, monkeypatch: pytest.MonkeyPatch
) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(mixpanel.logger, "warning", lambda msg, *a: warnings.append(msg))
    mp.import_data(None, "ID", "ev", 1.0)
    mp.merge(None, "a", "b")
    assert warnings == []
    mp.import_data("K", "ID", "ev", 1.0, api_secret="S")
    assert len(warnings) == 2
    mp.merge("K", "a", "b")
    assert len(warnings) == 3


PEOPLE = [
    ("people_set", "$set"),
    ("people_set_once", "$set_once"),
    ("people_increment", "$add"),
    ("people_append", "$append"),
    ("people_union", "$union"),
    ("people_remove", "$remove"),
]


@pytest.mark.parametrize(("method", "op"), PEOPLE)
def test_a7_people_operations(mp: Mixpanel, log: Log, method: str, op: str) -> None:
    assert getattr(mp, method)("amq", {"a": 1}) is None
    record = {"$token": "12345", "$time": 1000.1, "$distinct_id": "amq", op: {"a": 1}}
    assert log.calls == [("people", record, None)]
    assert list(log.calls[0][1]) == ["$token", "$time", "$distinct_id", op]
    assert log.arg_counts == [2]


def test_a8_people_unset_and_delete(mp: Mixpanel, log: Log) -> None:
    mp.people_unset("amq", ["A", "B"])
    mp.people_delete("amq")
    base = {"$token": "12345", "$time": 1000.1, "$distinct_id": "amq"}
    assert [c[1] for c in log.calls] == [{**base, "$unset": ["A", "B"]}, {**base, "$delete": ""}]


def test_a9_track_charge_does_not_modify_the_callers_dict(mp: Mixpanel, log: Log) -> None:
    properties = {"$time": "2013-04-01T09:02:00"}
    mp.people_track_charge("amq", 12.65, properties)
    mp.people_track_charge("amq", 12.65)
    appended = [c[1]["$append"] for c in log.calls]
    assert appended == [
        {"$transactions": {"$time": "2013-04-01T09:02:00", "$amount": 12.65}},
        {"$transactions": {"$amount": 12.65}},
    ]
    assert properties == {"$time": "2013-04-01T09:02:00"}


def test_a10_clear_charges(mp: Mixpanel, log: Log) -> None:
    mp.people_clear_charges("amq")
    assert log.calls[0][1]["$unset"] == ["$transactions"]


def test_a11_profile_meta_keys_at_top_level(mp: Mixpanel, log: Log) -> None:
    mp.people_set("amq", {"a": 1}, meta={"$ip": 0, "$ignore_time": True})
    assert log.calls[0][1] == {
        "$token": "12345", "$time": 1000.1, "$distinct_id": "amq", "$set": {"a": 1},
        "$ip": 0, "$ignore_time": True,
    }  # fmt: skip


def test_people_update_raw(mp: Mixpanel, log: Log) -> None:
    mp.people_update({"$distinct_id": "x", "$set": {"a": 1}, "$time": 5})
    record = {"$token": "12345", "$time": 5, "$distinct_id": "x", "$set": {"a": 1}}
    assert log.calls[0] == ("people", record, None)


GROUPS = [
    ("group_set", "$set", {"a": 1}),
    ("group_set_once", "$set_once", {"a": 1}),
    ("group_union", "$union", {"a": [1]}),
    ("group_unset", "$unset", ["a"]),
    ("group_remove", "$remove", {"a": 1}),
]


@pytest.mark.parametrize(("method", "op", "value"), GROUPS)
def test_a12_group_operations(mp: Mixpanel, log: Log, method: str, op: str, value: Any) -> None:
    getattr(mp, method)("company", "amq", value)
    record = {"$token": "12345", "$time": 1000.1, "$group_key": "company", "$group_id": "amq"}
    assert log.calls == [("groups", {**record, op: value}, None)]


def test_a12_group_delete_and_update(mp: Mixpanel, log: Log) -> None:
    mp.group_delete("company", "amq", meta={"$ignore_time": True})
    mp.group_update({"$group_key": "k", "$group_id": "g", "$set": {}})
    assert log.calls[0][1] == {
        "$token": "12345", "$time": 1000.1, "$group_key": "company", "$group_id": "amq",
        "$delete": "", "$ignore_time": True,
    }  # fmt: skip
    assert log.calls[1][0] == "groups"
    assert not hasattr(mp, "group_increment") and not hasattr(mp, "group_append")


def test_a13_datetimes(mp: Mixpanel, log: Log) -> None:
    mp.people_set("amq", {"born": datetime(2014, 2, 14, 1, 2, 3)})
    aware = datetime(2014, 2, 14, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=5)))
    mp.people_set("amq", {"born": aware})
    assert [c[1]["$set"]["born"] for c in log.calls] == ["2014-02-14T01:02:03"] * 2


def test_a14_unserializable_raises_at_the_call_site(mp: Mixpanel, log: Log) -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        mp.track("ID", "e", {"price": Decimal("1.5")})
    assert log.calls == []

    class DecimalSerializer(DatetimeSerializer):
        def default(self, o: Any) -> Any:
            if isinstance(o, Decimal):
                return o.to_eng_string()
            return super().default(o)

    mp._serializer = DecimalSerializer
    mp.track("ID", "e", {"price": Decimal("1.5")})
    assert log.calls[0][1]["properties"]["price"] == "1.5"
    Mixpanel("t", log, DecimalSerializer).track("ID", "e", {"p": Decimal("2")})
    assert log.calls[1][1]["properties"]["p"] == "2"


def test_a15_compact_json() -> None:
    assert json_dumps({"a": [1, 2]}) == '{"a":[1,2]}'
    assert json_dumps({"é": 1}) == '{"\\u00e9":1}'
    dated = json_dumps({"d": datetime(2020, 1, 2)}, cls=DatetimeSerializer)
    assert dated == '{"d":"2020-01-02T00:00:00"}'
    assert json.loads(json_dumps([{"b": 1, "a": 2}]))[0] == {"b": 1, "a": 2}


def test_a24_credentials_warning(monkeypatch: pytest.MonkeyPatch, log: Log) -> None:
    warnings: list[str] = []
    monkeypatch.setattr(mixpanel.logger, "warning", lambda msg, *a: warnings.append(msg))
    creds = ServiceAccountCredentials("u", "s", "42")
    default = Mixpanel("t", credentials=creds)
    assert isinstance(default._consumer, Consumer)
    assert default._consumer._credentials is creds
    Mixpanel("t")
    Mixpanel("t", consumer=log)
    assert warnings == []
    Mixpanel("t", consumer=log, credentials=creds)
    assert len(warnings) == 1
    assert "ignored when a custom consumer is provided" in warnings[0]


def test_flag_providers_without_their_config_raise() -> None:
    mp = Mixpanel("t")
    with pytest.raises(MixpanelException, match="local_flags_config"):
        _ = mp.local_flags
    with pytest.raises(MixpanelException, match="remote_flags_config"):
        _ = mp.remote_flags
    with mp as entered:
        assert entered is mp
