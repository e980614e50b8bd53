"""The console section of the center's settings (env RTCC_CONSOLE__..., e.g.
RTCC_CONSOLE__TILE_URL=https://tiles.city.gov/{z}/{x}/{y}.png or
RTCC_CONSOLE__GROUP_RECORDING__ENABLED=true)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from central.fanout_policy import AutoSharePolicy, GroupRecordingPolicy, RadiusM
from runtime.config import Section


class MapView(Section):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    zoom: int = Field(default=12, ge=1, le=20)


class ConsoleSettings(Section):
    tile_url: str | None = Field(
        default=None,
        description="The agency's map tile server ({z}/{x}/{y}); none: a neutral grid. The "
        "pages never fetch tiles from anywhere else.",
    )
    tile_attribution: str = Field(default="", max_length=200)
    overlays: dict[str, Path] = Field(
        default_factory=dict,
        description="Name -> GeoJSON file drawn over the map (beats, districts).",
    )
    map: MapView | None = Field(default=None, description="Where the map opens; none: the fleet.")
    share_radius_m: RadiusM = Field(default=2000.0, description="A share's default radius.")
    share_ttl_s: float = Field(
        default=3600.0, gt=0, le=86_400, description="A share's default life."
    )
    position_fresh_s: float = Field(
        default=120.0, gt=0, le=3600, description="A share goes to units whose fix is this recent."
    )
    battery_critical_pct: float = Field(default=10.0, ge=0, le=100)
    storage_critical_pct: float = Field(default=5.0, ge=0, le=100)
    group_recording: GroupRecordingPolicy = GroupRecordingPolicy()
    auto_share: AutoSharePolicy = AutoSharePolicy()
    page_queue: int = Field(
        default=2000, ge=10, le=100_000, description="Events a slow page may lag before it resyncs."
    )
    feed_history: int = Field(
        default=20_000, ge=100, le=1_000_000, description="Events kept for pages that reconnect."
    )
