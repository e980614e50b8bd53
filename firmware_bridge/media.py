"""Encoded video as every source hands it to the agent: one interface for the simulator,
files and (later) RTSP and V4L2 cameras."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal, Protocol

VideoCodec = Literal["h264", "vp8"]
CLOCK_RATE = 90_000


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One encoded picture. H.264 is an Annex-B access unit (start codes, SPS/PPS before
    each keyframe); VP8 is one frame. `pts` counts 1/90000 s; `captured_at` is wall-clock."""

    codec: VideoCodec
    data: bytes
    pts: int
    keyframe: bool
    captured_at: float


class VideoSource(Protocol):
    codec: VideoCodec

    @property
    def width(self) -> int: ...

    @property
    def height(self) -> int: ...

    @property
    def fps(self) -> float: ...

    def frames(self) -> AsyncIterator[EncodedFrame]:
        """Frames paced in real time, until the source ends or the iterator is closed."""
        ...

    def request_keyframe(self) -> None:
        """Ask for a keyframe soon (a viewer joined or lost one); a pass-through source
        that cannot encode ignores it."""
        ...
