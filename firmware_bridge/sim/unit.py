"""A simulated patrol unit: a GPS track around a point, battery drain, occasional events.

Deterministic for a given seed and sequence of `now` values (no clock, no randomness of
its own), so tests can replay it exactly.
"""

from __future__ import annotations

import math
import random

from firmware_bridge.device import DeviceEvent, DeviceStatus, GpsFix

EARTH_RADIUS_M = 6_371_000.0
SIMULATED_EVENTS = ("button.mark", "button.record", "lightbar.on", "door.open")


class SimulatedUnit:
    def __init__(
        self,
        seed: int,
        center_lat: float,
        center_lon: float,
        radius_m: float = 800.0,
        speed_mps: float = 9.0,
        event_interval_s: float = 120.0,
        battery_drain_pct_per_h: float = 6.0,
        storage_total_bytes: int = 64 * 2**30,
    ) -> None:
        self._rng = random.Random(seed)
        self._center = (center_lat, center_lon)
        self._radius_m = radius_m * (0.5 + self._rng.random())
        self._speed = speed_mps
        self._phase = self._rng.random() * 2 * math.pi
        self._direction = self._rng.choice((-1.0, 1.0))
        self._event_interval_s = event_interval_s
        self._drain_per_s = battery_drain_pct_per_h / 3600.0
        self._battery = 60.0 + 40.0 * self._rng.random()
        self._storage_total = storage_total_bytes
        self._storage_free = int(storage_total_bytes * (0.5 + 0.4 * self._rng.random()))
        self._started: float | None = None
        self._last: float | None = None
        self._next_event: float | None = None
        self._events_emitted = 0

    def poll(self, now: float) -> tuple[DeviceStatus, list[DeviceEvent]]:
        if self._started is None:
            self._started = self._last = now
            self._next_event = now + self._event_gap()
        assert self._last is not None and self._next_event is not None
        dt = max(0.0, now - self._last)
        self._last = now
        self._battery = max(0.0, self._battery - dt * self._drain_per_s)
        events = []
        while self._event_interval_s > 0 and now >= self._next_event:
            kind = self._rng.choice(SIMULATED_EVENTS)
            events.append(
                DeviceEvent(
                    kind, self._next_event, {"source": "simulator", "n": self._events_emitted}
                )
            )
            self._events_emitted += 1
            self._next_event += self._event_gap()
        return self._status(now), events

    def _event_gap(self) -> float:
        return self._rng.expovariate(1.0 / self._event_interval_s) if self._event_interval_s else 0

    def _status(self, now: float) -> DeviceStatus:
        assert self._started is not None
        angle = self._phase + self._direction * self._speed * (now - self._started) / self._radius_m
        north = self._radius_m * math.sin(angle)
        east = self._radius_m * math.cos(angle)
        lat = self._center[0] + math.degrees(north / EARTH_RADIUS_M)
        lon = self._center[1] + math.degrees(
            east / (EARTH_RADIUS_M * math.cos(math.radians(self._center[0])))
        )
        # Tangent of the circle, as a compass heading (0 = north, clockwise).
        heading = math.degrees(math.atan2(-math.sin(angle), math.cos(angle)))
        if self._direction < 0:
            heading += 180.0
        return DeviceStatus(
            model="rtcc-sim",
            firmware="sim-1",
            camera_connected=True,
            recording=False,
            battery_pct=round(self._battery, 1),
            storage_free_bytes=self._storage_free,
            storage_total_bytes=self._storage_total,
            fix=GpsFix(lat, lon, 4.0, heading % 360.0, self._speed, now),
            link_type="lte",
            signal_dbm=-70 - int(20 * abs(math.sin(angle * 3))),
        )
