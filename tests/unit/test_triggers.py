"""The trigger policy: device events -> what the unit does by itself."""

from __future__ import annotations

from agent.triggers import DEFAULT_RULES, AlertIntent, RecordIntent, TriggerPolicy, TriggerRule
from firmware_bridge.device import DeviceEvent
from protocol.events import EventType, TriggerBody
from protocol.events import TriggerAction as Action


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


def test_intents_record_first_then_one_alert_with_its_typed_body() -> None:
    policy = TriggerPolicy(DEFAULT_RULES)
    draw = DeviceEvent("trigger.holster_draw", 7.0, {"active": True})
    record, alert = policy.intents(draw, 7.0)
    assert record == RecordIntent("trigger.holster_draw")
    assert isinstance(alert, AlertIntent) and alert.ts == 7.0
    assert alert.body == TriggerBody(
        trigger="trigger.holster_draw",
        actions=[Action.ALERT, Action.RECORD, Action.STREAM],
        stream=True,
        recording=True,
    )
    assert alert.body.event_type is EventType.ALERT
    # On the wire the body is what units have always sent.
    assert alert.body.model_dump(mode="json") == {
        "trigger": "trigger.holster_draw",
        "actions": ["alert", "record", "stream"],
        "stream": True,
        "recording": True,
    }


def test_watch_me_asks_for_a_stream_and_records_nothing() -> None:
    (request,) = TriggerPolicy(DEFAULT_RULES).intents(event("button.watch_me", press="long"), 0)
    assert isinstance(request, AlertIntent)
    assert request.body.event_type is EventType.STREAM_REQUEST
    assert not request.body.recording
    assert TriggerPolicy(DEFAULT_RULES).intents(event("door.open"), 0) == []
