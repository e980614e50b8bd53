"""What a relay worker reports about its streams (shared by the worker and the front)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class StreamInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stream_id: str
    codec: str | None
    live: bool = Field(description="Media arrived within the last couple of seconds.")
    publisher: bool = Field(default=False, description="A publisher session exists.")
    last_media_age_s: float | None = None
    started: float | None
    viewers: int
    frames_in: int
    bitrate_bps: float
    relay_delay_p50_ms: float | None = None
    relay_delay_p99_ms: float | None = None


class ViewerSession(BaseModel):
    """A viewer's question "is my session still there, and is there video?": a page whose
    video stopped keeps a session the relay still holds (the unit is reconnecting) and
    joins again only when the relay lost it."""

    model_config = ConfigDict(extra="forbid")

    live: bool
    publisher: bool
