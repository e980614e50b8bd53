"""What the unit does by itself when the body-cam or the vehicle reports something: a pure
policy from device events to intents, configured by rules. The service carries them out."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from firmware_bridge.device import DeviceEvent
from protocol.events import EventType, TriggerAction, TriggerBody


class TriggerRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    event: str = Field(description="Device event type, e.g. trigger.holster_draw.")
    actions: frozenset[TriggerAction]
    cooldown_s: float = Field(
        default=10.0, ge=0, description="A repeat within this time does not act again."
    )


EVERYTHING = frozenset(TriggerAction)
RECORD = frozenset({TriggerAction.RECORD})
DEFAULT_RULES = (
    TriggerRule(event=EventType.TRIGGER_HOLSTER_DRAW, actions=EVERYTHING),
    TriggerRule(event=EventType.TRIGGER_GUNSHOT, actions=EVERYTHING),
    TriggerRule(event=EventType.TRIGGER_MAN_DOWN, actions=EVERYTHING),
    TriggerRule(
        event=EventType.TRIGGER_TASER_ARM,
        actions=frozenset({TriggerAction.RECORD, TriggerAction.ALERT}),
    ),
    TriggerRule(event=EventType.TRIGGER_LIGHTBAR, actions=RECORD),
    TriggerRule(event=EventType.TRIGGER_SIREN, actions=RECORD),
    TriggerRule(event=EventType.BUTTON_RECORD, actions=RECORD),
    TriggerRule(event=EventType.BUTTON_WATCH_ME, actions=frozenset({TriggerAction.STREAM})),
)


@dataclass(frozen=True, slots=True)
class RecordIntent:
    """Start recording evidence, and the body-cam's own recording."""

    trigger: str


@dataclass(frozen=True, slots=True)
class AlertIntent:
    """Tell the center: an `alert`, or a `stream.request` when only streaming is asked
    (`body.event_type`). `body.recording` is what the rule asked; the service says whether
    recording really started."""

    body: TriggerBody
    ts: float


Intent = RecordIntent | AlertIntent


class TriggerPolicy:
    """Sensor triggers act when they become active (`data.active`), not when they clear."""

    def __init__(self, rules: tuple[TriggerRule, ...] | list[TriggerRule]) -> None:
        self._rules = {rule.event: rule for rule in rules}
        self._last_fired: dict[str, float] = {}

    def actions(self, event: DeviceEvent, now: float) -> frozenset[TriggerAction]:
        rule = self._rules.get(event.type)
        if rule is None or event.data.get("active", True) is False:
            return frozenset()
        last = self._last_fired.get(event.type)
        if last is not None and now - last < rule.cooldown_s:
            return frozenset()
        self._last_fired[event.type] = now
        return rule.actions

    def intents(self, event: DeviceEvent, now: float) -> list[Intent]:
        """What to do about a device event, in order: recording first, so that the alert
        can say whether it started."""
        actions = self.actions(event, now)
        intents: list[Intent] = []
        if TriggerAction.RECORD in actions:
            intents.append(RecordIntent(event.type))
        if TriggerAction.ALERT in actions or TriggerAction.STREAM in actions:
            body = TriggerBody(
                trigger=event.type,
                actions=sorted(actions),
                stream=TriggerAction.STREAM in actions,
                recording=TriggerAction.RECORD in actions,
            )
            intents.append(AlertIntent(body, event.ts))
        return intents
