"""The media core shared by the agent's camera and the relay's fan-out (pure: no I/O, no
clock): encoded frames are kept and handed on whole, never decoded.

- `GopCache` keeps the frames since the last keyframe, so a new consumer starts at once
  instead of waiting for the source's next keyframe.
- `KeyframeQueue` is one consumer's bounded queue. A consumer that falls behind loses whole
  frames only up to the next keyframe (a dropped encoded frame breaks decoding until one
  comes); the caller then asks the source for one.
- `is_keyframe` reads an H.264 (Annex-B) or VP8 frame's own bits.
"""

from __future__ import annotations

import fractions
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

# RTP video timestamps and every encoded frame's `pts` count 1/90000 s.
CLOCK_RATE = 90_000
TIME_BASE = fractions.Fraction(1, CLOCK_RATE)

ANNEXB_START = b"\x00\x00\x01"
NAL_IDR = 5


class Keyed(Protocol):
    @property
    def keyframe(self) -> bool: ...


FrameT = TypeVar("FrameT", bound=Keyed)


def nal_types(annexb: bytes) -> set[int]:
    """The NAL unit types of an H.264 Annex-B access unit."""
    types = set()
    start = annexb.find(ANNEXB_START)
    while start >= 0 and start + 3 < len(annexb):
        types.add(annexb[start + 3] & 0x1F)
        start = annexb.find(ANNEXB_START, start + 3)
    return types


def is_keyframe(codec: str, data: bytes) -> bool:
    """H.264 (Annex-B): an IDR slice is present. VP8: the frame tag's key-frame bit is 0."""
    if codec == "vp8":
        return bool(data) and not data[0] & 0x01
    return NAL_IDR in nal_types(data)


class GopCache(Generic[FrameT]):
    """The frames since the last keyframe; empty when there is none, or when the GOP grew
    past `max_frames` (too long to replay: a new consumer waits for a keyframe)."""

    def __init__(self, max_frames: int) -> None:
        self.max_frames = max_frames
        self.frames: list[FrameT] = []

    def add(self, frame: FrameT) -> None:
        if frame.keyframe:
            self.frames = [frame]
        elif self.frames and len(self.frames) < self.max_frames:
            self.frames.append(frame)
        else:
            self.frames = []

    def clear(self) -> None:
        self.frames = []


@dataclass
class KeyframeQueue(Generic[FrameT]):
    """`dropped` counts every frame not queued, `flushed` those dropped because the queue
    was full; `on_ready` is called whenever a frame was queued."""

    maxsize: int
    on_ready: Callable[[], None] = lambda: None
    frames: deque[FrameT] = field(default_factory=deque)
    waiting_for_keyframe: bool = True
    dropped: int = 0
    flushed: int = 0
    sent: int = 0

    def offer(self, frame: FrameT) -> bool:
        """Queue a frame; True if this consumer now needs a keyframe."""
        if self.waiting_for_keyframe and not frame.keyframe:
            self.dropped += 1
            return False
        if len(self.frames) >= self.maxsize:
            self.dropped += len(self.frames)
            self.flushed += len(self.frames)
            self.frames.clear()
            if not frame.keyframe:
                self.waiting_for_keyframe = True
                self.dropped += 1
                self.flushed += 1
                return True
        self.waiting_for_keyframe = False
        self.frames.append(frame)
        self.on_ready()
        return False

    def pop(self) -> FrameT | None:
        if not self.frames:
            return None
        self.sent += 1
        return self.frames.popleft()
