"""What a relay worker says about the recent past it holds of a stream, a clip of it and
the headers that date one (shared by the worker and the front; pure)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

# Arrival of a clip's first and last frame (epoch seconds), and how many frames it has.
CLIP_START = "x-rewind-start"
CLIP_END = "x-rewind-end"
CLIP_FRAMES = "x-rewind-frames"


@dataclass(frozen=True, slots=True)
class Clip:
    """A window of a stream in one file a player reads."""

    data: bytes
    media_type: str
    start: float  # arrival of its first frame (epoch seconds)
    end: float  # arrival of its last frame
    frames: int


class RecentSpan(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stream_id: str
    codec: str
    start: float = Field(description="Arrival of the oldest frame held (epoch seconds).")
    end: float = Field(description="Arrival of the newest frame held.")
    frames: int
    bytes: int = Field(description="Memory the frames take at the relay.")
