"""Event types both sides name, and the body of the events a trigger rule raises. Pure.

An event's type travels in its topic and body as a dotted name; the wire stays open to
types this enumeration does not list (a device may report more than the center acts on),
but whatever either side raises or matches is named here, once."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from protocol.models import ContractModel, Name


class EventType(StrEnum):
    # Raised by the unit when a trigger rule says so (body: TriggerBody).
    ALERT = "alert"
    STREAM_REQUEST = "stream.request"
    # The body-cam, over its link.
    BODYCAM_CONNECTED = "bodycam.connected"
    BODYCAM_RECORDING_STARTED = "bodycam.recording_started"
    BODYCAM_RECORDING_STOPPED = "bodycam.recording_stopped"
    BATTERY_LOW = "battery.low"
    BUTTON_RECORD = "button.record"
    BUTTON_MARK = "button.mark"
    BUTTON_WATCH_ME = "button.watch_me"
    TRIGGER_HOLSTER_DRAW = "trigger.holster_draw"
    TRIGGER_LIGHTBAR = "trigger.lightbar"
    TRIGGER_SIREN = "trigger.siren"
    TRIGGER_DOOR = "trigger.door"
    TRIGGER_TASER_ARM = "trigger.taser_arm"
    TRIGGER_MAN_DOWN = "trigger.man_down"
    TRIGGER_GUNSHOT = "trigger.gunshot"
    # The unit's evidence recorder.
    RECORDING_STARTED = "recording.started"
    RECORDING_STOPPED = "recording.stopped"
    STORAGE_FULL = "storage_full"
    STORAGE_AVAILABLE = "storage_available"
    EVIDENCE_RECOVERED = "evidence.recovered"
    # The center's own events (center topics).
    STREAM_STARTED = "stream.started"
    STREAM_STOPPED = "stream.stopped"


TRIGGER_EVENTS = frozenset({EventType.ALERT, EventType.STREAM_REQUEST})
"""The events whose body is a TriggerBody."""


class TriggerAction(StrEnum):
    RECORD = "record"  # start recording evidence
    STREAM = "stream"  # ask the center to take the unit live
    ALERT = "alert"  # raise an alert at the center


class TriggerBody(ContractModel):
    """`data` of an `alert` or `stream.request` event: which device event fired which
    actions. `stream` asks the center to take the unit live (it answers with stream.start
    and the token the unit needs); `recording` says whether evidence recording started."""

    trigger: Name
    actions: list[TriggerAction] = Field(max_length=len(TriggerAction))
    stream: bool
    recording: bool

    @property
    def event_type(self) -> EventType:
        return EventType.ALERT if TriggerAction.ALERT in self.actions else EventType.STREAM_REQUEST
