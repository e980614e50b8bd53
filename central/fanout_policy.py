"""Who gets a shared stream, and who records with a triggering unit (pure: no I/O, no clock).

The center decides what counts as online and as a fresh fix (it owns the clock) and passes the
answers in; these rules only combine them with where units are.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from central.nearby import NearbyIndex
from protocol.events import EventType
from protocol.geo import bearing_deg, haversine_m

MAX_RADIUS_M = 100_000.0
RadiusM = Annotated[float, Field(ge=0, le=MAX_RADIUS_M, allow_inf_nan=False)]


@dataclass(frozen=True, slots=True)
class Candidate:
    """What the center knows of a unit when it shares a stream."""

    online: bool
    patrol_login: bool  # someone signed in on the unit's patrol page to watch
    fresh: bool  # its last position fix is recent enough to trust


@dataclass(frozen=True, slots=True)
class Recipient:
    unit_id: str
    distance_m: float | None  # None: chosen by hand, and no position known
    bearing_from_unit_deg: float | None  # which way the unit must head for the scene


def _order(recipient: Recipient) -> tuple[bool, float, str]:
    distance = recipient.distance_m
    return (distance is None, 0.0 if distance is None else distance, recipient.unit_id)


def select_share_recipients(
    index: NearbyIndex,
    candidates: Mapping[str, Candidate],
    scene: tuple[float, float],
    radius_m: float,
    chosen: Collection[str] = (),
    exclude: Collection[str] = (),
) -> list[Recipient]:
    """Units within `radius_m` of the scene that are online, with a fresh fix and a patrol
    login; and every unit the dispatcher `chose` that has a patrol login, wherever it is; never
    one in `exclude` (the unit whose video is shared). Nearest first, then by unit id; chosen
    units without a position last."""
    picked: dict[str, Recipient] = {}
    for unit_id, distance in index.within(*scene, radius_m):
        unit = candidates.get(unit_id)
        if unit is None or unit_id in exclude:
            continue
        if unit.online and unit.fresh and unit.patrol_login:
            picked[unit_id] = _recipient(unit_id, index.position(unit_id), scene, distance)
    for unit_id in chosen:
        unit = candidates.get(unit_id)
        if unit is None or unit_id in exclude or unit_id in picked or not unit.patrol_login:
            continue
        picked[unit_id] = _recipient(unit_id, index.position(unit_id), scene)
    return sorted(picked.values(), key=_order)


def _recipient(
    unit_id: str,
    position: tuple[float, float] | None,
    scene: tuple[float, float],
    distance_m: float | None = None,
) -> Recipient:
    """`distance_m`: the one `within` already measured, if any."""
    if position is None:
        return Recipient(unit_id, None, None)
    if distance_m is None:
        distance_m = haversine_m(*scene, *position)
    return Recipient(unit_id, distance_m, bearing_deg(*position, *scene))


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GroupRecordingPolicy(_Policy):
    """When a unit's trigger fires, the online units near it start recording too."""

    enabled: bool = Field(default=False, description="Record with nearby units on a trigger.")
    radius_m: RadiusM = Field(default=500.0, description="How near, metres.")
    per_trigger: dict[str, RadiusM | None] = Field(
        default_factory=dict,
        description="Trigger event type -> its own radius in metres; null: that trigger "
        "never starts group recording.",
    )

    def radius_for(self, trigger_type: str) -> float | None:
        if not self.enabled:
            return None
        if trigger_type in self.per_trigger:
            return self.per_trigger[trigger_type]
        return self.radius_m

    def targets(
        self,
        trigger_unit: str,
        trigger_type: str,
        index: NearbyIndex,
        online: Collection[str],
    ) -> list[str]:
        """The online units within the radius of the triggering unit, nearest first, without
        it; none when the policy or this trigger is off, or the unit has no position."""
        radius = self.radius_for(trigger_type)
        position = index.position(trigger_unit)
        if radius is None or position is None:
            return []
        return [
            unit_id
            for unit_id, _ in index.within(*position, radius)
            if unit_id != trigger_unit and unit_id in online
        ]


class AutoSharePolicy(_Policy):
    """Which triggers share the unit's stream with nearby patrols without a dispatcher."""

    enabled: bool = Field(default=False, description="Share on a trigger without a dispatcher.")
    triggers: frozenset[str] = Field(
        default=frozenset({EventType.TRIGGER_HOLSTER_DRAW.value}),
        description="Trigger event types that share.",
    )
    radius_m: RadiusM = Field(default=2000.0, description="How near, metres.")
    ttl_s: float = Field(
        default=3600.0, gt=0, le=86_400, allow_inf_nan=False, description="How long it lasts."
    )

    def applies(self, trigger: str) -> bool:
        return self.enabled and trigger in self.triggers
