"""The messages of the body-cam link and their payload layouts (see PROTOCOL.md).

Pure: bytes in, models out and back. Every field has a fixed binary layout (big-endian) so a
camera vendor can implement it in C without a serialisation library.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field


class PayloadError(ValueError):
    """A payload that does not match its message type's layout."""


class Button(IntEnum):
    RECORD = 1
    MARK = 2
    WATCH_ME = 3


class Press(IntEnum):
    SHORT = 1
    LONG = 2


class Sensor(IntEnum):
    HOLSTER_DRAW = 1
    LIGHTBAR = 2
    SIREN = 3
    DOOR = 4
    TASER_ARM = 5
    MAN_DOWN = 6
    GUNSHOT = 7


class AckStatus(IntEnum):
    OK = 0
    UNSUPPORTED = 1
    FAILED = 2


class Capability(IntEnum):
    """Bits of HELLO's capability mask."""

    VIDEO = 1 << 0
    AUDIO = 1 << 1
    HAPTIC = 1 << 2
    WATCHED_LED = 1 << 3
    CLOCK_SET = 1 << 4
    SENSORS = 1 << 5


class LinkMessage(BaseModel):
    """Base of every message. `TYPE` is its code on the wire; `ACKED` says whether the
    receiver must acknowledge it (and the sender retransmit until it does)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    TYPE: ClassVar[int]
    ACKED: ClassVar[bool] = False

    def pack(self) -> bytes:
        raise NotImplementedError

    @classmethod
    def unpack(cls, payload: bytes) -> LinkMessage:
        raise NotImplementedError


def _strings(payload: bytes, count: int) -> tuple[list[str], bytes]:
    out = []
    for _ in range(count):
        if not payload:
            raise PayloadError("string missing")
        size = payload[0]
        raw = payload[1 : 1 + size]
        if len(raw) != size:
            raise PayloadError("string truncated")
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise PayloadError("string is not UTF-8") from exc
        payload = payload[1 + size :]
    return out, payload


def _pack_string(text: str) -> bytes:
    raw = text.encode("utf-8")
    return bytes([len(raw)]) + raw


def _flag(value: int, name: str) -> bool:
    if value > 1:
        raise PayloadError(f"{name} must be 0 or 1")
    return value == 1


def _fixed(fmt: str, payload: bytes) -> tuple[int, ...]:
    layout = struct.Struct(">" + fmt)
    if len(payload) != layout.size:
        raise PayloadError(f"expected {layout.size} bytes, got {len(payload)}")
    return layout.unpack(payload)


class Hello(LinkMessage):
    TYPE = 0x01
    ACKED = True
    capabilities: int = Field(ge=0, le=0xFFFFFFFF)
    model: str = Field(max_length=63)
    serial: str = Field(max_length=63)
    firmware: str = Field(max_length=63)

    def pack(self) -> bytes:
        return (
            struct.pack(">I", self.capabilities)
            + _pack_string(self.model)
            + _pack_string(self.serial)
            + _pack_string(self.firmware)
        )

    @classmethod
    def unpack(cls, payload: bytes) -> Hello:
        if len(payload) < 4:
            raise PayloadError("hello too short")
        (capabilities,) = struct.unpack(">I", payload[:4])
        (model, serial, firmware), rest = _strings(payload[4:], 3)
        if rest:
            raise PayloadError("trailing bytes")
        return cls(capabilities=capabilities, model=model, serial=serial, firmware=firmware)


class Battery(LinkMessage):
    TYPE = 0x02
    percent: int = Field(ge=0, le=100)
    millivolts: int = Field(ge=0, le=0xFFFF)
    charging: bool

    def pack(self) -> bytes:
        return struct.pack(">BHB", self.percent, self.millivolts, self.charging)

    @classmethod
    def unpack(cls, payload: bytes) -> Battery:
        percent, millivolts, charging = _fixed("BHB", payload)
        return cls(percent=percent, millivolts=millivolts, charging=charging == 1)


class Storage(LinkMessage):
    TYPE = 0x03
    free_mb: int = Field(ge=0, le=0xFFFFFFFF)
    total_mb: int = Field(ge=0, le=0xFFFFFFFF)

    def pack(self) -> bytes:
        return struct.pack(">II", self.free_mb, self.total_mb)

    @classmethod
    def unpack(cls, payload: bytes) -> Storage:
        free_mb, total_mb = _fixed("II", payload)
        return cls(free_mb=free_mb, total_mb=total_mb)


class RecordingState(LinkMessage):
    TYPE = 0x04
    recording: bool

    def pack(self) -> bytes:
        return bytes([self.recording])

    @classmethod
    def unpack(cls, payload: bytes) -> RecordingState:
        (state,) = _fixed("B", payload)
        return cls(recording=_flag(state, "recording state"))


class ButtonPress(LinkMessage):
    TYPE = 0x05
    ACKED = True
    button: Button
    press: Press

    def pack(self) -> bytes:
        return bytes([self.button, self.press])

    @classmethod
    def unpack(cls, payload: bytes) -> ButtonPress:
        button, press = _fixed("BB", payload)
        try:
            return cls(button=Button(button), press=Press(press))
        except ValueError as exc:
            raise PayloadError("unknown button or press") from exc


class Trigger(LinkMessage):
    TYPE = 0x06
    ACKED = True
    sensor: Sensor
    active: bool

    def pack(self) -> bytes:
        return bytes([self.sensor, self.active])

    @classmethod
    def unpack(cls, payload: bytes) -> Trigger:
        sensor, active = _fixed("BB", payload)
        try:
            return cls(sensor=Sensor(sensor), active=_flag(active, "active"))
        except ValueError as exc:
            raise PayloadError("unknown sensor") from exc


class Clock(LinkMessage):
    TYPE = 0x07
    unix_ms: int = Field(ge=0, le=2**64 - 1)

    def pack(self) -> bytes:
        return struct.pack(">Q", self.unix_ms)

    @classmethod
    def unpack(cls, payload: bytes) -> Clock:
        (unix_ms,) = _fixed("Q", payload)
        return cls(unix_ms=unix_ms)


class _Switch(LinkMessage):
    """A downstream on/off command: one byte, 0 or 1."""

    ACKED = True
    on: bool

    def pack(self) -> bytes:
        return bytes([self.on])

    @classmethod
    def unpack(cls, payload: bytes) -> _Switch:
        (on,) = _fixed("B", payload)
        return cls(on=_flag(on, "on"))


class Record(_Switch):
    TYPE = 0x40


class Watched(_Switch):
    """The "being watched" indicator."""

    TYPE = 0x41


class Haptic(LinkMessage):
    TYPE = 0x42
    ACKED = True
    pattern: int = Field(ge=0, le=255)
    duration_ms: int = Field(ge=0, le=0xFFFF)

    def pack(self) -> bytes:
        return struct.pack(">BH", self.pattern, self.duration_ms)

    @classmethod
    def unpack(cls, payload: bytes) -> Haptic:
        pattern, duration_ms = _fixed("BH", payload)
        return cls(pattern=pattern, duration_ms=duration_ms)


class ClockSet(LinkMessage):
    TYPE = 0x43
    ACKED = True
    unix_ms: int = Field(ge=0, le=2**64 - 1)

    def pack(self) -> bytes:
        return struct.pack(">Q", self.unix_ms)

    @classmethod
    def unpack(cls, payload: bytes) -> ClockSet:
        (unix_ms,) = _fixed("Q", payload)
        return cls(unix_ms=unix_ms)


class HelloRequest(LinkMessage):
    """The gateway (re)attached: the camera answers with HELLO and a full report. A serial
    line has no connect of its own, so this is how a restarted gateway learns its camera."""

    TYPE = 0x44

    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, payload: bytes) -> HelloRequest:
        if payload:
            raise PayloadError("hello request has no payload")
        return cls()


class Ack(LinkMessage):
    TYPE = 0x7F
    acked_seq: int = Field(ge=0, le=0xFFFF)
    status: AckStatus = AckStatus.OK

    def pack(self) -> bytes:
        return struct.pack(">HB", self.acked_seq, self.status)

    @classmethod
    def unpack(cls, payload: bytes) -> Ack:
        acked_seq, status = _fixed("HB", payload)
        try:
            return cls(acked_seq=acked_seq, status=AckStatus(status))
        except ValueError as exc:
            raise PayloadError("unknown ack status") from exc


MESSAGE_TYPES: dict[int, type[LinkMessage]] = {
    cls.TYPE: cls
    for cls in (
        Hello,
        Battery,
        Storage,
        RecordingState,
        ButtonPress,
        Trigger,
        Clock,
        Record,
        Watched,
        Haptic,
        ClockSet,
        HelloRequest,
        Ack,
    )
}
