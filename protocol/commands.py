"""Every command a center may send a unit: its name, its arguments and the data of its
result. Pure. The unit refuses (and counts) a name it does not know, and answers `failed`
when arguments do not fit their model."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import Field

from protocol.models import ContractModel, RuntimeConfig, Timestamp
from protocol.streams import StreamStartArgs

ShortId = Annotated[str, Field(max_length=128)]


class CommandName(StrEnum):
    PING = "ping"
    REBIRTH = "rebirth"
    CONFIG_SET = "config.set"
    STREAM_START = "stream.start"
    STREAM_STOP = "stream.stop"
    RECORDING_START = "recording.start"
    RECORDING_STOP = "recording.stop"
    SNAPSHOT = "snapshot"
    EVIDENCE_STATUS = "evidence.status"


class NoArgs(ContractModel):
    """Arguments of a command that takes none."""


class ConfigSetArgs(ContractModel):
    """`config.set`: the settings to change; the others keep their value."""

    state_heartbeat_s: float | None = None
    position_min_interval_s: float | None = None
    position_min_distance_m: float | None = None


class RecordingStartArgs(ContractModel):
    trigger: Annotated[str, Field(min_length=1, max_length=256)] = "command"


class PingResult(ContractModel):
    pong: Timestamp
    sid: int = Field(ge=0)


class RebirthResult(ContractModel):
    sid: int = Field(ge=0)


class ConfigSetResult(ContractModel):
    config: RuntimeConfig


class StreamStartResult(ContractModel):
    stream_id: ShortId


class StreamStopResult(ContractModel):
    stopped: ShortId | None


class RecordingResult(ContractModel):
    """`recording.start` and `recording.stop`: the recording begun or ended (None: none was
    running)."""

    recording_id: ShortId | None


class SnapshotResult(ContractModel):
    captured_at: float
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    jpeg_b64: str


class EvidenceStatusResult(ContractModel):
    recording: ShortId | None
    storage_full: bool
    pre_event_s: float
    segments_written: int = Field(ge=0)
    segments_to_upload: int = Field(ge=0)
    bytes_to_upload: int = Field(ge=0)
    quarantined: list[str]
    uploaded: int = Field(ge=0)
    write_errors: int = Field(ge=0)
    live_frames_dropped: int = Field(ge=0)


COMMAND_ARGS: dict[CommandName, type[ContractModel]] = {
    CommandName.PING: NoArgs,
    CommandName.REBIRTH: NoArgs,
    CommandName.CONFIG_SET: ConfigSetArgs,
    CommandName.STREAM_START: StreamStartArgs,
    CommandName.STREAM_STOP: NoArgs,
    CommandName.RECORDING_START: RecordingStartArgs,
    CommandName.RECORDING_STOP: NoArgs,
    CommandName.SNAPSHOT: NoArgs,
    CommandName.EVIDENCE_STATUS: NoArgs,
}
COMMAND_RESULTS: dict[CommandName, type[ContractModel]] = {
    CommandName.PING: PingResult,
    CommandName.REBIRTH: RebirthResult,
    CommandName.CONFIG_SET: ConfigSetResult,
    CommandName.STREAM_START: StreamStartResult,
    CommandName.STREAM_STOP: StreamStopResult,
    CommandName.RECORDING_START: RecordingResult,
    CommandName.RECORDING_STOP: RecordingResult,
    CommandName.SNAPSHOT: SnapshotResult,
    CommandName.EVIDENCE_STATUS: EvidenceStatusResult,
}
