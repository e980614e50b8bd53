"""What a relay worker says about the recent past it holds of a stream, and the headers
that date a clip of it (shared by the worker and the front)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# Arrival of a clip's first and last frame (epoch seconds), and how many frames it has.
CLIP_START = "x-rewind-start"
CLIP_END = "x-rewind-end"
CLIP_FRAMES = "x-rewind-frames"


class RecentSpan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stream_id: str
    codec: str
    start: float = Field(description="Arrival of the oldest frame held (epoch seconds).")
    end: float = Field(description="Arrival of the newest frame held.")
    frames: int
    bytes: int = Field(description="Memory the frames take at the relay.")
