"""What a relay worker reports about its streams (shared by the worker and the front)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StreamInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stream_id: str
    codec: str | None
    live: bool
    started: float | None
    viewers: int
    frames_in: int
    bitrate_bps: float
    relay_delay_p50_ms: float | None = None
    relay_delay_p99_ms: float | None = None
