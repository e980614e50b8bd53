"""What the pages show of a unit (pure): one flat summary per unit, built from the fields of
its last state that matter here, who drives it and whether it is live or alerting.

Summaries and readings are plain dicts of numbers and strings (typed): a fleet of 5,000 units
changes every second, and such dicts cost little to build, nothing to the garbage collector
(which does not track them) and one call to encode.
"""

from __future__ import annotations

from enum import StrEnum

from typing_extensions import TypedDict  # pydantic needs it on Python < 3.12

from protocol import UnitState


class StateLabel(StrEnum):
    """The one colour a unit has on the map, most urgent first."""

    ALERT = "alert"
    LIVE = "live"
    RECORDING = "recording"
    AVAILABLE = "available"
    OFFLINE = "offline"


class Measures(TypedDict):
    """Where a unit is and how its battery and storage are: a summary shows them as read."""

    lat: float | None
    lon: float | None
    heading_deg: float | None
    speed_mps: float | None
    fix_ts: float | None
    battery_pct: float | None
    storage_free_pct: float | None


class Reading(Measures):
    """What the console keeps of a unit's last state."""

    storage_full: bool
    camera_connected: bool
    recording: bool
    streaming: bool
    link_type: str
    signal_dbm: int | None
    agent_version: str
    firmware_version: str | None


class UnitSummary(Measures):
    unit_id: str
    officer: str | None
    online: bool | None
    state_label: str  # a StateLabel's value: plain strings keep the dict out of the GC's sight
    camera_connected: bool | None
    recording: bool
    streaming: bool
    link_type: str | None
    signal_dbm: int | None
    last_seen: float | None
    agent_version: str | None
    firmware_version: str | None
    stream_id: str | None


def reading_of(state: UnitState) -> Reading:
    position, storage = state.position, state.storage
    free = None
    if storage is not None and storage.total_bytes > 0:
        free = round(100.0 * storage.free_bytes / storage.total_bytes, 1)
    return {
        "lat": position.lat if position else None,
        "lon": position.lon if position else None,
        "heading_deg": position.heading_deg if position else None,
        "speed_mps": position.speed_mps if position else None,
        "fix_ts": position.fix_ts if position else None,
        "battery_pct": state.battery_pct,
        "storage_free_pct": free,
        "storage_full": storage.full if storage else False,
        "camera_connected": state.camera.connected,
        "recording": state.camera.recording,
        "streaming": state.camera.streaming,
        "link_type": state.link.type,
        "signal_dbm": state.link.signal_dbm,
        "agent_version": state.versions.agent,
        "firmware_version": state.versions.firmware,
    }


def state_label(
    online: bool | None, reading: Reading | None, live: bool, alerting: bool
) -> StateLabel:
    if alerting:
        return StateLabel.ALERT
    if not online:
        return StateLabel.OFFLINE
    if live or (reading is not None and reading["streaming"]):
        return StateLabel.LIVE
    if reading is not None and reading["recording"]:
        return StateLabel.RECORDING
    return StateLabel.AVAILABLE


NO_READING: Reading = {
    "lat": None,
    "lon": None,
    "heading_deg": None,
    "speed_mps": None,
    "fix_ts": None,
    "battery_pct": None,
    "storage_free_pct": None,
    "storage_full": False,
    "camera_connected": False,
    "recording": False,
    "streaming": False,
    "link_type": "unknown",
    "signal_dbm": None,
    "agent_version": "",
    "firmware_version": None,
}


def summarize(
    unit_id: str,
    online: bool | None,
    last_seen: float | None,
    reading: Reading | None,
    officer: str | None,
    stream_id: str | None,
    alerting: bool,
) -> UnitSummary:
    """`reading` None: the unit's state has not arrived yet (only its presence)."""
    r = reading or NO_READING
    return {
        "unit_id": unit_id,
        "officer": officer,
        "online": online,
        "state_label": state_label(online, reading, stream_id is not None, alerting).value,
        "lat": r["lat"],
        "lon": r["lon"],
        "heading_deg": r["heading_deg"],
        "speed_mps": r["speed_mps"],
        "fix_ts": r["fix_ts"],
        "battery_pct": r["battery_pct"],
        "storage_free_pct": r["storage_free_pct"],
        "camera_connected": r["camera_connected"] if reading else None,
        "recording": r["recording"],
        "streaming": r["streaming"],
        "link_type": r["link_type"] if reading else None,
        "signal_dbm": r["signal_dbm"],
        "last_seen": last_seen,
        "agent_version": r["agent_version"] if reading else None,
        "firmware_version": r["firmware_version"],
        "stream_id": stream_id,
    }
