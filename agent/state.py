"""What the unit reports as state, and when it is worth publishing (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from agent.uplink import UplinkReport
from firmware_bridge import DeviceStatus
from protocol import (
    CameraStatus,
    Health,
    LinkStatus,
    Position,
    RuntimeConfig,
    StorageStatus,
    UnitState,
    Versions,
)
from protocol.models import FixKind, UplinkStatus

LINK_TYPES = {"lte", "5g", "wifi", "ethernet"}


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """What the agent knows of itself, beside the device."""

    version: str
    uptime_s: float
    streaming: bool
    recording: bool
    storage_full: bool
    health: Health
    config: RuntimeConfig
    uplink: UplinkReport | None = None
    fix: FixKind | None = None


def uplink_status(report: UplinkReport | None) -> UplinkStatus | None:
    if report is None:
        return None
    return UplinkStatus(
        degraded=report.degraded,
        level=report.level,
        estimate_bps=None
        if report.estimate_bps is None
        else min(10_000_000_000, max(0, report.estimate_bps)),
        loss_pct=None if report.loss is None else round(100 * min(1.0, report.loss), 1),
        rtt_ms=None if report.rtt_s is None else min(600_000, max(0, round(1000 * report.rtt_s))),
    )


def build_state(device: DeviceStatus, facts: AgentFacts) -> UnitState:
    fix = device.fix
    position = None
    if fix is not None:
        position = Position(
            lat=fix.lat,
            lon=fix.lon,
            accuracy_m=fix.accuracy_m,
            heading_deg=fix.heading_deg % 360.0,
            speed_mps=fix.speed_mps,
            fix_ts=fix.ts,
        )
    link_type = device.link_type if device.link_type in LINK_TYPES else "unknown"
    # NaN: the vehicle source knows no battery (a gateway on gpsd without a body-cam).
    battery = None if math.isnan(device.battery_pct) else min(100.0, max(0.0, device.battery_pct))
    return UnitState(
        position=position,
        fix=facts.fix,
        battery_pct=battery,
        camera=CameraStatus(
            connected=device.camera_connected,
            recording=device.recording or facts.recording,
            streaming=facts.streaming,
            model=device.model,
        ),
        storage=StorageStatus(
            free_bytes=device.storage_free_bytes,
            total_bytes=device.storage_total_bytes,
            full=facts.storage_full,
        ),
        link=LinkStatus(type=link_type, signal_dbm=device.signal_dbm),
        uplink=uplink_status(facts.uplink),
        versions=Versions(agent=facts.version, firmware=device.firmware),
        uptime_s=facts.uptime_s,
        health=facts.health,
        config=facts.config,
    )


def _significant(state: UnitState) -> tuple[object, ...]:
    """The parts of state whose change is news at once (not position, uptime, counters)."""
    storage_pct = (
        None
        if state.storage is None or state.storage.total_bytes == 0
        else int(100 * state.storage.free_bytes / state.storage.total_bytes)
    )
    return (
        None if state.battery_pct is None else int(state.battery_pct),
        state.camera,
        state.fix,
        state.link.type,
        None if state.uplink is None else (state.uplink.degraded, state.uplink.level),
        state.versions,
        state.config,
        storage_pct,
        state.health.outbox_dropped,
    )


class StatePolicy:
    """Publish on a significant change, on a move (rate-limited by time and distance), and
    as a heartbeat at least every `state_heartbeat_s`."""

    def __init__(self, config: RuntimeConfig) -> None:
        self.config = config
        self._last_at: float | None = None
        self._last_key: tuple[object, ...] | None = None
        self._last_position: Position | None = None
        self._last_position_at = float("-inf")

    def due(self, now: float, state: UnitState) -> bool:
        if self._last_at is None or now - self._last_at >= self.config.state_heartbeat_s:
            return True
        if _significant(state) != self._last_key:
            return True
        return self._moved(now, state.position)

    def _moved(self, now: float, position: Position | None) -> bool:
        if position is None or now - self._last_position_at < self.config.position_min_interval_s:
            return False
        if self._last_position is None:
            return True
        return position.distance_m(self._last_position) >= self.config.position_min_distance_m

    def published(self, now: float, state: UnitState) -> None:
        self._last_at = now
        self._last_key = _significant(state)
        if state.position is not None:
            self._last_position = state.position
            self._last_position_at = now

    def forget(self) -> None:
        """Publish at the next chance (a new connection, a rebirth)."""
        self._last_at = None
