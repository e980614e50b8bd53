"""What the pages show of a unit (pure): one flat summary per unit, built from what the
registry knows, who drives it and whether it is live or alerting."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from central.registry import UnitRecord
from protocol import UnitState


class StateLabel(StrEnum):
    """The one colour a unit has on the map, most urgent first."""

    ALERT = "alert"
    LIVE = "live"
    RECORDING = "recording"
    AVAILABLE = "available"
    OFFLINE = "offline"


class UnitSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit_id: str
    officer: str | None = None
    online: bool | None = None
    state_label: StateLabel
    lat: float | None = None
    lon: float | None = None
    heading_deg: float | None = None
    speed_mps: float | None = None
    fix_ts: float | None = None
    battery_pct: float | None = None
    storage_free_pct: float | None = None
    camera_connected: bool | None = None
    recording: bool = False
    streaming: bool = False
    link_type: str | None = None
    signal_dbm: int | None = None
    last_seen: float | None = None
    agent_version: str | None = None
    firmware_version: str | None = None
    stream_id: str | None = None


def state_label(
    online: bool | None, state: UnitState | None, live: bool, alerting: bool
) -> StateLabel:
    if alerting:
        return StateLabel.ALERT
    if not online:
        return StateLabel.OFFLINE
    if live or (state is not None and state.camera.streaming):
        return StateLabel.LIVE
    if state is not None and state.camera.recording:
        return StateLabel.RECORDING
    return StateLabel.AVAILABLE


def storage_free_pct(state: UnitState) -> float | None:
    storage = state.storage
    if storage is None or storage.total_bytes <= 0:
        return None
    return round(100.0 * storage.free_bytes / storage.total_bytes, 1)


def summarize(
    record: UnitRecord,
    state: UnitState | None,
    officer: str | None,
    stream_id: str | None,
    alerting: bool,
) -> UnitSummary:
    summary = UnitSummary(
        unit_id=record.unit_id,
        officer=officer,
        online=record.online,
        state_label=state_label(record.online, state, stream_id is not None, alerting),
        last_seen=record.last_seen,
        stream_id=stream_id,
    )
    if state is None:
        return summary
    position = state.position
    if position is not None:
        summary.lat, summary.lon = position.lat, position.lon
        summary.heading_deg, summary.speed_mps = position.heading_deg, position.speed_mps
        summary.fix_ts = position.fix_ts
    summary.battery_pct = state.battery_pct
    summary.storage_free_pct = storage_free_pct(state)
    summary.camera_connected = state.camera.connected
    summary.recording = state.camera.recording
    summary.streaming = state.camera.streaming
    summary.link_type = state.link.type
    summary.signal_dbm = state.link.signal_dbm
    summary.agent_version = state.versions.agent
    summary.firmware_version = state.versions.firmware
    return summary
