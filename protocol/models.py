"""Body models of the MQTT contract. Every model forbids unknown fields."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, JsonValue

from protocol.geo import haversine_m
from protocol.topics import check_id, check_name

ShortText = Annotated[str, Field(max_length=256)]
UnitId = Annotated[str, AfterValidator(check_id)]
Name = Annotated[str, AfterValidator(check_name)]
Timestamp = Annotated[float, Field(ge=0, le=32503680000, allow_inf_nan=False)]


class ContractModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Presence(ContractModel):
    """Birth (`online=True`, retained) and Last Will (`online=False`, retained)."""

    online: bool
    reason: Literal["birth", "rebirth", "lwt", "shutdown"]


class Position(ContractModel):
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    accuracy_m: float | None = Field(default=None, ge=0, le=1e5, allow_inf_nan=False)
    heading_deg: float | None = Field(default=None, ge=0, lt=360, allow_inf_nan=False)
    speed_mps: float | None = Field(default=None, ge=0, le=200, allow_inf_nan=False)
    fix_ts: Timestamp

    def distance_m(self, other: Position) -> float:
        """Great-circle distance (haversine) in metres."""
        return haversine_m(self.lat, self.lon, other.lat, other.lon)


class FixKind(StrEnum):
    """What the unit's position source says: no receiver answers (`no_gps`), a receiver
    without a fix, or a 2D or 3D fix."""

    NO_GPS = "no_gps"
    NO_FIX = "no_fix"
    FIX_2D = "2d"
    FIX_3D = "3d"


class CameraStatus(ContractModel):
    connected: bool
    recording: bool = False
    streaming: bool = False
    model: ShortText | None = None


class StorageStatus(ContractModel):
    free_bytes: int = Field(ge=0)
    total_bytes: int = Field(ge=0)
    full: bool = Field(default=False, description="Evidence recording paused for disk space.")


class LinkStatus(ContractModel):
    type: Literal["lte", "5g", "wifi", "ethernet", "unknown"] = "unknown"
    signal_dbm: int | None = Field(default=None, ge=-200, le=0)


class UplinkStatus(ContractModel):
    """The live stream's uplink as the unit judges it from the relay's reports; present only
    while the unit streams. `degraded`: the unit sends less video than configured (`level`)
    so that status keeps flowing."""

    degraded: bool = False
    level: Literal["normal", "reduced", "substream", "keyframes"] = "normal"
    estimate_bps: int | None = Field(default=None, ge=0, le=10_000_000_000)
    loss_pct: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    rtt_ms: int | None = Field(default=None, ge=0, le=600_000)


class Versions(ContractModel):
    agent: ShortText
    firmware: ShortText | None = None


class Health(ContractModel):
    outbox_rows: int = Field(ge=0)
    outbox_dropped: int = Field(ge=0)
    mqtt_connects: int = Field(ge=0)
    commands_rejected: int = Field(ge=0)


class RuntimeConfig(ContractModel):
    """Settings a center may change at run time with `config.set`."""

    state_heartbeat_s: float = Field(
        default=30.0, ge=1.0, le=3600.0, description="Publish state at least this often."
    )
    position_min_interval_s: float = Field(
        default=5.0, ge=0.1, le=600.0, description="Publish a moved position at most this often."
    )
    position_min_distance_m: float = Field(
        default=5.0, ge=0.0, le=10_000.0, description="Moves shorter than this are not news."
    )


class UnitState(ContractModel):
    position: Position | None = None
    fix: FixKind | None = Field(default=None, description="None: the unit does not say.")
    battery_pct: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    camera: CameraStatus
    storage: StorageStatus | None = None
    link: LinkStatus = LinkStatus()
    uplink: UplinkStatus | None = None
    versions: Versions
    uptime_s: float = Field(ge=0, allow_inf_nan=False)
    health: Health
    config: RuntimeConfig = RuntimeConfig()


class Event(ContractModel):
    type: Name
    data: dict[str, JsonValue] = Field(default_factory=dict)


class Command(ContractModel):
    name: Name
    cmd_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    reply_to: Annotated[str, Field(max_length=256)]
    expires_at: Timestamp
    args: dict[str, JsonValue] = Field(default_factory=dict)


class CommandStatus(StrEnum):
    ACCEPTED = "accepted"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        return self is not CommandStatus.ACCEPTED


class CommandResult(ContractModel):
    cmd_id: Annotated[str, Field(min_length=1, max_length=64)]
    status: CommandStatus
    detail: Annotated[str, Field(max_length=1024)] = ""
    data: dict[str, JsonValue] = Field(default_factory=dict)


class CenterStatus(ContractModel):
    online: bool
    version: ShortText
    center_id: UnitId


BodyT = TypeVar("BodyT", bound=ContractModel)


class Envelope(BaseModel, Generic[BodyT]):
    """What every payload travels in: `{"v":1,"id","sid","seq","ts","body"}`. `sid` grows
    with every connection of the sender; `seq` counts the sender's messages within one
    `sid`, so a gap means something was lost. `id` stays the same when a message is sent
    again (store and forward), so receivers can drop repeats."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    sid: int = Field(ge=0, lt=2**53)
    seq: int = Field(ge=0, lt=2**53)
    ts: Timestamp
    body: BodyT
