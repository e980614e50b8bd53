"""Agent configuration (env RTCC_..., optional TOML file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field

from protocol import RuntimeConfig
from protocol.topics import check_id
from runtime.config import CommonSettings, Section


class SimSettings(Section):
    """The simulated body-cam and vehicle (the real bridge comes with the hardware)."""

    lat: float = Field(default=40.7128, ge=-90, le=90, description="Centre of the patrol area.")
    lon: float = Field(default=-74.0060, ge=-180, le=180)
    radius_m: float = Field(default=800.0, gt=0, le=50_000)
    speed_mps: float = Field(default=9.0, ge=0, le=60)
    event_interval_s: float = Field(
        default=120.0, ge=0, description="Mean time between simulated events; 0 = none."
    )
    seed: int | None = Field(default=None, description="Defaults to a hash of the unit id.")


class OutboxLimits(Section):
    max_rows: int = Field(default=100_000, ge=10)
    max_bytes: int = Field(default=64 * 2**20, ge=65_536)


class AgentSettings(CommonSettings):
    unit_id: Annotated[str, AfterValidator(check_id)] = Field(
        description="This unit's id: the certificate CN, MQTT username and client id."
    )
    data_dir: Path = Field(
        default=Path("/var/lib/rtcc-agent"), description="Outbox and agent state live here."
    )
    poll_interval_s: float = Field(default=1.0, gt=0, le=60, description="Device poll period.")
    runtime: RuntimeConfig = Field(
        default=RuntimeConfig(), description="Initial runtime settings (config.set changes them)."
    )
    sim: SimSettings = SimSettings()
    outbox: OutboxLimits = OutboxLimits()
