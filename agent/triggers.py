"""What the unit does by itself when the body-cam or the vehicle reports something: a pure
policy from device events to actions, configured by rules."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from firmware_bridge.device import DeviceEvent


class Action(StrEnum):
    RECORD = "record"  # start recording evidence
    STREAM = "stream"  # ask the center to take the unit live
    ALERT = "alert"  # raise an alert at the center


class TriggerRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    event: str = Field(description="Device event type, e.g. trigger.holster_draw.")
    actions: frozenset[Action]
    cooldown_s: float = Field(
        default=10.0, ge=0, description="A repeat within this time does not act again."
    )


EVERYTHING = frozenset({Action.RECORD, Action.STREAM, Action.ALERT})
DEFAULT_RULES = (
    TriggerRule(event="trigger.holster_draw", actions=EVERYTHING),
    TriggerRule(event="trigger.gunshot", actions=EVERYTHING),
    TriggerRule(event="trigger.man_down", actions=EVERYTHING),
    TriggerRule(event="trigger.taser_arm", actions=frozenset({Action.RECORD, Action.ALERT})),
    TriggerRule(event="trigger.lightbar", actions=frozenset({Action.RECORD})),
    TriggerRule(event="trigger.siren", actions=frozenset({Action.RECORD})),
    TriggerRule(event="button.record", actions=frozenset({Action.RECORD})),
    TriggerRule(event="button.watch_me", actions=frozenset({Action.STREAM})),
)


class TriggerPolicy:
    """Sensor triggers act when they become active (`data.active`), not when they clear."""

    def __init__(self, rules: tuple[TriggerRule, ...] | list[TriggerRule]) -> None:
        self._rules = {rule.event: rule for rule in rules}
        self._last_fired: dict[str, float] = {}

    def actions(self, event: DeviceEvent, now: float) -> frozenset[Action]:
        rule = self._rules.get(event.type)
        if rule is None or event.data.get("active", True) is False:
            return frozenset()
        last = self._last_fired.get(event.type)
        if last is not None and now - last < rule.cooldown_s:
            return frozenset()
        self._last_fired[event.type] = now
        return rule.actions
