"""What the gateway knows of its body-cam, folded from link messages. Pure: messages and
`now` in, device events out."""

from __future__ import annotations

from firmware_bridge.device import DeviceEvent
from firmware_bridge.link.messages import (
    Battery,
    Button,
    ButtonPress,
    Capability,
    Clock,
    ClockSet,
    Hello,
    LinkMessage,
    RecordingState,
    Sensor,
    Storage,
    Trigger,
)

# The device event each button and sensor raises: the names the agent's trigger rules and
# the contract's EventType use (this package depends on nothing of ours, so they are
# spelled here and a test holds them to the contract).
BUTTON_EVENTS = {
    Button.RECORD: "button.record",
    Button.MARK: "button.mark",
    Button.WATCH_ME: "button.watch_me",
}
SENSOR_EVENTS = {
    Sensor.HOLSTER_DRAW: "trigger.holster_draw",
    Sensor.LIGHTBAR: "trigger.lightbar",
    Sensor.SIREN: "trigger.siren",
    Sensor.DOOR: "trigger.door",
    Sensor.TASER_ARM: "trigger.taser_arm",
    Sensor.MAN_DOWN: "trigger.man_down",
    Sensor.GUNSHOT: "trigger.gunshot",
}
LOW_BATTERY_PCT = 15
CLOCK_TOLERANCE_S = 1.0


class BodycamState:
    def __init__(self, stale_after_s: float = 15.0) -> None:
        self.stale_after_s = stale_after_s
        self.hello: Hello | None = None
        self.battery: Battery | None = None
        self.storage: Storage | None = None
        self.recording = False
        self.clock_offset_s: float | None = None
        self.last_heard: float | None = None
        self._low_battery = False

    def connected(self, now: float) -> bool:
        return (
            self.hello is not None
            and self.last_heard is not None
            and now - self.last_heard <= self.stale_after_s
        )

    def has(self, capability: Capability) -> bool:
        return self.hello is not None and bool(self.hello.capabilities & capability)

    def clock_set(self, now: float) -> ClockSet | None:
        """The message that sets the camera's clock, once, when it has drifted."""
        if (
            self.clock_offset_s is None
            or abs(self.clock_offset_s) <= CLOCK_TOLERANCE_S
            or not self.has(Capability.CLOCK_SET)
        ):
            return None
        self.clock_offset_s = None
        return ClockSet(unix_ms=int(now * 1000))

    def apply(self, message: LinkMessage, now: float) -> list[DeviceEvent]:
        self.last_heard = now
        match message:
            case Hello():
                self.hello = message
                return [
                    DeviceEvent(
                        "bodycam.connected",
                        now,
                        {
                            "model": message.model,
                            "serial": message.serial,
                            "firmware": message.firmware,
                        },
                    )
                ]
            case Battery():
                self.battery = message
                low = message.percent <= LOW_BATTERY_PCT and not message.charging
                crossed, self._low_battery = low and not self._low_battery, low
                if crossed:
                    return [DeviceEvent("battery.low", now, {"percent": message.percent})]
            case Storage():
                self.storage = message
            case RecordingState():
                if message.recording != self.recording:
                    self.recording = message.recording
                    started = message.recording
                    kind = "bodycam.recording_started" if started else "bodycam.recording_stopped"
                    return [DeviceEvent(kind, now)]
            case ButtonPress():
                press = message.press.name.lower()
                return [DeviceEvent(BUTTON_EVENTS[message.button], now, {"press": press})]
            case Trigger():
                sensor = SENSOR_EVENTS[message.sensor]
                return [DeviceEvent(sensor, now, {"active": message.active})]
            case Clock():
                self.clock_offset_s = message.unix_ms / 1000 - now
        return []
