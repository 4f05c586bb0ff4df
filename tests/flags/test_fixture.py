"""The pytest plugin's ``mixpanel_flags`` fixture, used as an application's test would."""

from __future__ import annotations

from segment_clone.mixpanel import Consumer, Mixpanel
from segment_clone.testing import MixpanelFlags


def test_a_flag_set_for_this_test_is_evaluated_and_its_exposure_recorded(
    mixpanel_flags: MixpanelFlags,
) -> None:
    mixpanel_flags.set_value("new_checkout", True)
    mixpanel_flags.set_value("price", 42)
    mp = Mixpanel(
        "token",
        consumer=Consumer(api_host=mixpanel_flags.api_host),
        local_flags_config=mixpanel_flags.local_config(),
        remote_flags_config=mixpanel_flags.remote_config(),
    )
    with mp:
        mp.local_flags.start_polling_for_definitions()
        user = {"distinct_id": "ada"}
        assert mp.local_flags.is_enabled("new_checkout", user)
        assert mp.remote_flags.get_variant_value("price", 0, user) == 42
        assert mp.local_flags.get_variant_value("missing", "fallback", user) == "fallback"
    names = [e["properties"]["Experiment name"] for e in mixpanel_flags.exposures(2)]
    assert sorted(names) == ["new_checkout", "price"]


def test_definitions_start_empty_for_each_test(mixpanel_flags: MixpanelFlags) -> None:
    assert mixpanel_flags.collector.flags.document()["flags"] == []
