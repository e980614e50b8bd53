"""A simulated body-cam speaking the link, as firmware would: HELLO on connect, battery and
storage reports, recording state, buttons and sensor triggers, clock, and the gateway's
commands (record, watched indicator, haptic, clock set). Pure: the shell passes `now`."""

from __future__ import annotations

from dataclasses import dataclass

from firmware_bridge.link.messages import (
    Battery,
    Button,
    ButtonPress,
    Capability,
    Clock,
    ClockSet,
    Haptic,
    Hello,
    HelloRequest,
    LinkMessage,
    Press,
    Record,
    RecordingState,
    Sensor,
    Storage,
    Trigger,
    Watched,
)
from firmware_bridge.link.session import LinkSession

BATTERY_EVERY_S = 5.0
STORAGE_EVERY_S = 30.0
CLOCK_EVERY_S = 60.0
CAPABILITIES = (
    Capability.VIDEO
    | Capability.AUDIO
    | Capability.HAPTIC
    | Capability.WATCHED_LED
    | Capability.CLOCK_SET
    | Capability.SENSORS
)


@dataclass
class BodycamSnapshot:
    serial: str
    battery_pct: float
    storage_free_mb: int
    recording: bool
    watched: bool
    haptics: int
    clock_offset_s: float
    connected: bool


class SimulatedBodycam:
    def __init__(
        self,
        serial: str,
        model: str = "rtcc-bodycam-sim",
        firmware: str = "sim-2",
        battery_pct: float = 100.0,
        drain_pct_per_h: float = 8.0,
        storage_total_mb: int = 65_536,
        storage_free_mb: int = 60_000,
        record_mb_per_s: float = 0.5,
        clock_offset_s: float = 0.0,
    ) -> None:
        self.serial = serial
        self.model = model
        self.firmware = firmware
        self.battery_pct = battery_pct
        self.drain_per_s = drain_pct_per_h / 3600
        self.storage_total_mb = storage_total_mb
        self.storage_free_mb = float(storage_free_mb)
        self.record_mb_per_s = record_mb_per_s
        self.clock_offset_s = clock_offset_s
        self.recording = False
        self.watched = False
        self.haptics = 0
        self.session: LinkSession | None = None
        self._last: float | None = None
        self._due = {"battery": 0.0, "storage": 0.0, "clock": 0.0}

    def connect(self, now: float) -> None:
        """A gateway attached: a fresh link session that starts with HELLO and a full report."""
        self.session = LinkSession()
        self.session.send(
            Hello(
                capabilities=CAPABILITIES,
                model=self.model,
                serial=self.serial,
                firmware=self.firmware,
            ),
            now,
        )
        self.session.send(RecordingState(recording=self.recording), now)
        self._due = dict.fromkeys(self._due, now)
        self.tick(now)

    def disconnect(self) -> None:
        self.session = None

    def tick(self, now: float) -> None:
        elapsed = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        self.battery_pct = max(0.0, self.battery_pct - elapsed * self.drain_per_s)
        if self.recording:
            self.storage_free_mb = max(0.0, self.storage_free_mb - elapsed * self.record_mb_per_s)
        if self.session is None:
            return
        if now >= self._due["battery"]:
            self._due["battery"] = now + BATTERY_EVERY_S
            self.session.send(self._battery(), now)
        if now >= self._due["storage"]:
            self._due["storage"] = now + STORAGE_EVERY_S
            self.session.send(
                Storage(free_mb=int(self.storage_free_mb), total_mb=self.storage_total_mb), now
            )
        if now >= self._due["clock"]:
            self._due["clock"] = now + CLOCK_EVERY_S
            self.session.send(Clock(unix_ms=int((now + self.clock_offset_s) * 1000)), now)

    def _battery(self) -> Battery:
        percent = round(self.battery_pct)
        return Battery(percent=percent, millivolts=3300 + 9 * percent, charging=False)

    def press(self, button: Button, press: Press, now: float) -> None:
        if self.session is not None:
            self.session.send(ButtonPress(button=button, press=press), now)

    def trigger(self, sensor: Sensor, active: bool, now: float) -> None:
        if self.session is not None:
            self.session.send(Trigger(sensor=sensor, active=active), now)

    def set_battery(self, percent: float, now: float) -> None:
        self.battery_pct = max(0.0, min(100.0, percent))
        if self.session is not None:
            self.session.send(self._battery(), now)

    def receive(self, data: bytes, now: float) -> None:
        if self.session is None:
            self.connect(now)
        assert self.session is not None
        for message in self.session.receive(data, now):
            self._handle(message, now)

    def _handle(self, message: LinkMessage, now: float) -> None:
        assert self.session is not None
        match message:
            case HelloRequest():
                self.connect(now)
            case Record():
                if message.on != self.recording:
                    self.recording = message.on
                    self.session.send(RecordingState(recording=self.recording), now)
            case Watched():
                self.watched = message.on
            case Haptic():
                self.haptics += 1
            case ClockSet():
                self.clock_offset_s = message.unix_ms / 1000 - now

    def outgoing(self, now: float) -> bytes:
        return b"" if self.session is None else self.session.outgoing(now)

    def snapshot(self) -> BodycamSnapshot:
        return BodycamSnapshot(
            serial=self.serial,
            battery_pct=round(self.battery_pct, 2),
            storage_free_mb=int(self.storage_free_mb),
            recording=self.recording,
            watched=self.watched,
            haptics=self.haptics,
            clock_offset_s=round(self.clock_offset_s, 3),
            connected=self.session is not None,
        )
