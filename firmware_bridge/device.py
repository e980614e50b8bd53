"""The one interface every body-cam adapter offers the agent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class GpsFix:
    lat: float
    lon: float
    accuracy_m: float
    heading_deg: float
    speed_mps: float
    ts: float


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    model: str
    firmware: str
    camera_connected: bool
    recording: bool
    battery_pct: float
    storage_free_bytes: int
    storage_total_bytes: int
    fix: GpsFix | None
    link_type: str
    signal_dbm: int | None


@dataclass(frozen=True, slots=True)
class DeviceEvent:
    type: str
    ts: float
    data: dict[str, str | int | float | bool] = field(default_factory=dict)


class StatusSource(Protocol):
    def poll(self, now: float) -> tuple[DeviceStatus, list[DeviceEvent]]:
        """Current status and the events that happened since the last poll. `now` is
        wall-clock seconds; adapters keep no clock of their own."""
        ...
