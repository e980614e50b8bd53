"""The trigger policy: device events -> what the unit does by itself."""

from __future__ import annotations

from agent.triggers import DEFAULT_RULES, Action, TriggerPolicy, TriggerRule
from firmware_bridge.device import DeviceEvent


def event(kind: str, **data: bool | str) -> DeviceEvent:
    return DeviceEvent(kind, 0.0, dict(data))


def test_defaults_record_stream_and_alert_on_a_holster_draw() -> None:
    policy = TriggerPolicy(DEFAULT_RULES)
    assert policy.actions(event("trigger.holster_draw", active=True), 0) == {
        Action.RECORD,
        Action.STREAM,
        Action.ALERT,
    }
    assert policy.actions(event("trigger.lightbar", active=True), 0) == {Action.RECORD}
    assert policy.actions(event("button.watch_me", press="long"), 0) == {Action.STREAM}


def test_a_cleared_sensor_and_an_unknown_event_do_nothing() -> None:
    policy = TriggerPolicy(DEFAULT_RULES)
    assert policy.actions(event("trigger.holster_draw", active=False), 0) == frozenset()
    assert policy.actions(event("door.open"), 0) == frozenset()


def test_repeats_within_the_cooldown_do_not_act_again() -> None:
    policy = TriggerPolicy(
        [TriggerRule(event="trigger.door", actions={Action.ALERT}, cooldown_s=5)]
    )
    door = event("trigger.door", active=True)
    assert policy.actions(door, 100.0) == {Action.ALERT}
    assert policy.actions(door, 104.9) == frozenset()
    assert policy.actions(door, 105.0) == {Action.ALERT}
