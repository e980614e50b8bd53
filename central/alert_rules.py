"""Which alerts a dispatcher sees (pure): what a unit's trigger or event means, and the
alerts the center raises itself from what it sees of a unit (battery or storage running out,
a unit gone offline while recording). Each of those is raised once when the condition
starts and again only after it has cleared."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from central.unit_board import Reading
from protocol.events import EventType


class AlertKind(StrEnum):
    WEAPON_DRAWN = "weapon_drawn"
    GUNSHOT = "gunshot"
    MAN_DOWN = "man_down"
    WATCH_ME = "watch_me"
    BATTERY_CRITICAL = "battery_critical"
    STORAGE_CRITICAL = "storage_critical"
    OFFLINE_RECORDING = "offline_recording"
    OTHER = "other"


_BY_SOURCE: dict[str, AlertKind] = {
    EventType.TRIGGER_HOLSTER_DRAW: AlertKind.WEAPON_DRAWN,
    EventType.TRIGGER_GUNSHOT: AlertKind.GUNSHOT,
    EventType.TRIGGER_MAN_DOWN: AlertKind.MAN_DOWN,
    EventType.BUTTON_WATCH_ME: AlertKind.WATCH_ME,
    EventType.BATTERY_LOW: AlertKind.BATTERY_CRITICAL,
    EventType.STORAGE_FULL: AlertKind.STORAGE_CRITICAL,
}

EVENTS_RAISING_ALERTS = frozenset({EventType.BATTERY_LOW, EventType.STORAGE_FULL})
"""Unit events that are alerts in themselves (besides the trigger rules' `alert` events)."""


def kind_of(source: str | None) -> AlertKind:
    """The kind of alert a device event (a trigger's source, or the event itself) raises."""
    return _BY_SOURCE.get(source or "", AlertKind.OTHER)


@dataclass(frozen=True)
class Thresholds:
    battery_pct: float = 10.0
    storage_free_pct: float = 5.0
    # Cleared only this far above the threshold, so that a value hovering on it is one alert.
    hysteresis_pct: float = 3.0


@dataclass
class _Seen:
    online: bool | None = None
    recording: bool = False
    battery_low: bool = False
    storage_low: bool = False


class UnitWatch:
    """The center's own alerts, from each unit's presence and state as they change."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        self._units: dict[str, _Seen] = {}

    def observe(
        self, unit_id: str, online: bool | None, reading: Reading | None
    ) -> list[AlertKind]:
        """The alerts this observation starts."""
        seen = self._units.setdefault(unit_id, _Seen())
        raised: list[AlertKind] = []
        if seen.online and online is False and seen.recording:
            raised.append(AlertKind.OFFLINE_RECORDING)
        seen.online = online
        if reading is None or online is False:
            return raised
        seen.recording = reading["recording"]
        limits = self.thresholds
        battery = reading["battery_pct"]
        if battery is not None:
            if not seen.battery_low and battery <= limits.battery_pct:
                seen.battery_low = True
                raised.append(AlertKind.BATTERY_CRITICAL)
            elif seen.battery_low and battery > limits.battery_pct + limits.hysteresis_pct:
                seen.battery_low = False
        free = reading["storage_free_pct"]
        if free is not None:
            if not seen.storage_low and (
                free <= limits.storage_free_pct or reading["storage_full"]
            ):
                seen.storage_low = True
                raised.append(AlertKind.STORAGE_CRITICAL)
            elif seen.storage_low and free > limits.storage_free_pct + limits.hysteresis_pct:
                seen.storage_low = False
        return raised
