"""The recent past of a live stream, kept at its relay worker for rewind (pure: no I/O, no
clock; times come in).

- Encoded frames pass through untouched, in whole GOPs: what a buffer holds always starts
  with a keyframe, so any window of it decodes from its first frame.
- Bounded three ways: by time (the newest GOP that starts at or before the window's start
  is kept, so the whole window is covered), by bytes per stream, and by bytes over all of a
  worker's streams (`RecentBudget`: the buffer holding most gives up its oldest GOP). Bytes
  count each frame's payload and its bookkeeping, so the bound is on memory.
- Its own timeline: the publisher's 90 kHz timestamps while they agree with the arrival
  times, arrival times across a publisher's restart or a jump, so a gap stays a gap.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import islice

from runtime.media import CLOCK_RATE

# A frame's record and its bytes object beside its payload (CPython, 64-bit, measured).
FRAME_OVERHEAD_BYTES = 160
RTP_WRAP = 1 << 32
# Publisher timestamps that disagree with the arrival times by more than this are not
# believed: the arrival times stand in.
MAX_SKEW_TICKS = 2 * CLOCK_RATE


@dataclass(frozen=True, slots=True)
class RecentLimits:
    """Per stream: `seconds` (0: no rewind) and `max_bytes`; per worker: `worker_max_bytes`."""

    seconds: float
    max_bytes: int
    worker_max_bytes: int


@dataclass(frozen=True, slots=True)
class RecentFrame:
    data: bytes
    ts: int  # 1/90000 s on the buffer's own timeline: gaps kept, always increasing
    keyframe: bool
    at: float  # when it arrived (epoch seconds)

    @property
    def cost(self) -> int:
        return len(self.data) + FRAME_OVERHEAD_BYTES


class RecentBudget:
    """The bytes all of one worker's buffers hold, and their bound."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes <= 0:
            raise ValueError("max_bytes must be positive")
        self.max_bytes = max_bytes
        self.bytes = 0
        self.buffers: list[RecentBuffer] = []

    def make_room(self) -> None:
        """Past the bound, the buffer holding most gives up its oldest GOP, until within."""
        while self.bytes > self.max_bytes:
            max(self.buffers, key=lambda buffer: buffer.bytes).give_up_oldest()


class RecentBuffer:
    def __init__(self, seconds: float, max_bytes: int, budget: RecentBudget | None = None) -> None:
        if seconds <= 0 or max_bytes <= 0:
            raise ValueError("need seconds > 0 and max_bytes > 0")
        self.seconds = seconds
        self.max_bytes = max_bytes
        self.codec: str | None = None
        self.bytes = 0
        self.frames = 0
        self.skipped = 0  # not kept: no keyframe to decode them from
        self.gops_given_up = 0  # evicted for bytes before they left the time window
        self._gops: deque[list[RecentFrame]] = deque()
        self._budget = budget
        if budget is not None:
            budget.buffers.append(self)
        self._waiting = True
        self._last_pts: int | None = None
        self._last_ts: int | None = None
        self._last_at = 0.0

    # ---- what the relay tells it ----------------------------------------------------------

    def add(self, data: bytes, pts: int, keyframe: bool, at: float) -> None:
        """One frame of the stream: `pts` the publisher's 90 kHz timestamp, `at` its arrival."""
        ts = self._timeline(pts, at)
        if keyframe:
            self._gops.append([])
            self._waiting = False
        elif self._waiting:
            self.skipped += 1
            return
        frame = RecentFrame(data, ts, keyframe, at)
        self._gops[-1].append(frame)
        self._charge(frame.cost, 1)
        horizon = at - self.seconds
        while len(self._gops) > 1 and self._gops[1][0].at <= horizon:
            self._evict_oldest()
        while self.bytes > self.max_bytes:
            self.give_up_oldest()
        if self._budget is not None:
            self._budget.make_room()

    def restarted(self, codec: str) -> None:
        """A new publisher session: its timestamps start afresh, and it may bring another
        codec (what was held of the old one cannot go in the same file)."""
        if codec != self.codec:
            self.clear()
            self.codec = codec
        self._last_pts = None
        self._waiting = True

    def lost(self) -> None:
        """Frames were lost: what follows cannot be decoded until a keyframe."""
        self._waiting = True

    def clear(self) -> None:
        while self._gops:
            self._evict_oldest()
        self._waiting = True

    def close(self) -> None:
        """The stream is forgotten: give its bytes back to the worker's budget."""
        self.clear()
        if self._budget is not None and self in self._budget.buffers:
            self._budget.buffers.remove(self)

    def give_up_oldest(self) -> None:
        """Evict the oldest GOP before its time; the only one left goes too (the stream
        then waits for its next keyframe)."""
        if not self._gops:
            return
        if len(self._gops) == 1:
            self._waiting = True
        self._evict_oldest()
        self.gops_given_up += 1

    # ---- what rewind reads ---------------------------------------------------------------

    @property
    def span(self) -> tuple[float, float] | None:
        """Arrival of the first and the last frame held, or None when empty."""
        if not self._gops:
            return None
        return self._gops[0][0].at, self._gops[-1][-1].at

    def held(self) -> list[RecentFrame]:
        return [frame for gop in self._gops for frame in gop]

    def window(self, since: float, until: float) -> list[RecentFrame]:
        """The frames that show [since, until]: from the last keyframe that arrived at or
        before `since` (or the oldest held) to the last frame that arrived by `until`."""
        first = 0
        for index, gop in enumerate(self._gops):
            if gop[0].at > since:
                break
            first = index
        frames: list[RecentFrame] = []
        for gop in islice(self._gops, first, None):
            for frame in gop:
                if frame.at > until:
                    return frames
                frames.append(frame)
        return frames

    # ---- internals -----------------------------------------------------------------------

    def _timeline(self, pts: int, at: float) -> int:
        if self._last_ts is None:
            ts = 0
        else:
            wall = max(0, round((at - self._last_at) * CLOCK_RATE))
            step = wall
            if self._last_pts is not None:
                told = (pts - self._last_pts) % RTP_WRAP  # RTP timestamps wrap at 2**32
                if told < RTP_WRAP // 2 and abs(told - wall) <= MAX_SKEW_TICKS:
                    step = told
            ts = self._last_ts + max(1, step)
        self._last_ts, self._last_pts, self._last_at = ts, pts, at
        return ts

    def _evict_oldest(self) -> None:
        gop = self._gops.popleft()
        self._charge(-sum(frame.cost for frame in gop), -len(gop))

    def _charge(self, cost: int, frames: int) -> None:
        self.bytes += cost
        self.frames += frames
        if self._budget is not None:
            self._budget.bytes += cost
