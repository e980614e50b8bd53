"""Center configuration (env RTCC_..., optional TOML file)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator

from protocol.topics import check_id
from runtime.config import CommonSettings, Section


class HttpSettings(Section):
    host: str = Field(default="127.0.0.1", description="Address the API listens on.")
    port: int = Field(default=8080, ge=0, le=65_535, description="0 picks a free port.")


class BrokerSettings(Section):
    """The supervised Mosquitto child, used when RTCC_MQTT_URL is not set."""

    host: str = Field(default="127.0.0.1", description="Listener address of the child broker.")
    port: int = Field(default=0, ge=0, le=65_535, description="0 picks a free port.")


class FleetSettings(Section):
    partition_index: int = Field(default=0, ge=0)
    partition_count: int = Field(
        default=1, ge=1, le=1024, description="Fleet processes sharing the units by hash."
    )
    command_ttl_s: float = Field(
        default=30.0, gt=0, le=3600, description="Commands expire this long after sending."
    )
    rebirth_ttl_s: float = Field(default=30.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _index_in_range(self) -> FleetSettings:
        if self.partition_index >= self.partition_count:
            raise ValueError("partition_index must be below partition_count")
        return self


class CentralSettings(CommonSettings):
    center_id: Annotated[str, AfterValidator(check_id)] = Field(
        default="rtcc-1", description="This center's id (status topic, client ids)."
    )
    data_dir: Path = Field(default=Path("/var/lib/rtcc-central"))
    http: HttpSettings = HttpSettings()
    broker: BrokerSettings = BrokerSettings()
    fleet: FleetSettings = FleetSettings()
