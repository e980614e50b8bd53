"""The simulated vehicle: a unit driving circles with a steady 3D fix (firmware_bridge's
simulator), for demos, tests and benchmarks."""

from __future__ import annotations

import zlib

from firmware_bridge.device import DeviceEvent, DeviceStatus
from firmware_bridge.sim.unit import SimulatedUnit
from protocol.models import FixKind


class SimulatorVehicle:
    def __init__(self, unit: SimulatedUnit) -> None:
        self._unit = unit

    def poll(self, now: float) -> tuple[DeviceStatus, list[DeviceEvent]]:
        return self._unit.poll(now)

    def fix_kind(self, _now: float) -> FixKind:
        return FixKind.FIX_3D

    async def run(self) -> None:
        """Nothing to keep current: the simulator answers each poll."""


def simulated_vehicle(
    unit_id: str,
    lat: float,
    lon: float,
    radius_m: float,
    speed_mps: float,
    event_interval_s: float,
    seed: int | None = None,
) -> SimulatorVehicle:
    return SimulatorVehicle(
        SimulatedUnit(
            seed=seed if seed is not None else zlib.crc32(unit_id.encode()),
            center_lat=lat,
            center_lon=lon,
            radius_m=radius_m,
            speed_mps=speed_mps,
            event_interval_s=event_interval_s,
        )
    )
