"""Where the unit's position and vehicle status come from: `simulator` or `gpsd`
(configuration: vehicle.source)."""

from __future__ import annotations

from typing import Protocol

from firmware_bridge import StatusSource
from protocol.models import FixKind


class Vehicle(StatusSource, Protocol):
    def fix_kind(self, now: float) -> FixKind:
        """What the position source says of its fix, for the unit's state."""
        ...

    async def run(self) -> None:
        """Keep the source current (returns at once when there is nothing to keep)."""
        ...
