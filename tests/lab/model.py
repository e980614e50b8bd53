"""What the lab's link does with one frame offered at time t (pure: no clock, no socket).

One `LinkDirection` models one way of a vehicle's radio link, in the order a frame meets
them: a full cut, random loss, a token-bucket rate limit with a bounded queue (as tbf does),
then a propagation delay with uniform jitter. Frames are opaque to the model; every call is
given `now`, and randomness comes from the `rand` it is built with.

Frames leave in the order they arrived: a cellular link's radio layer delivers in order, so
jitter stretches the gaps between frames instead of reordering them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from enum import StrEnum
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

FrameT = TypeVar("FrameT")

# A full Ethernet frame must always fit in the bucket, or it could never leave.
MIN_BURST_BYTES = 1_514


class Faults(BaseModel):
    """The faults of one direction (cuts are separate: they come and go on their own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    delay_ms: float = Field(default=0.0, ge=0, le=60_000, description="One-way delay.")
    jitter_ms: float = Field(
        default=0.0, ge=0, le=60_000, description="Uniform +- spread around the delay."
    )
    loss: float = Field(default=0.0, ge=0, le=1, description="Probability a frame is lost.")
    rate_kbit: float | None = Field(
        default=None, gt=0, le=10_000_000, description="Token rate; None = no rate limit."
    )
    queue_ms: float = Field(
        default=300.0, gt=0, le=60_000, description="Longest wait in the rate queue (tail drop)."
    )
    burst_bytes: int = Field(default=2 * MIN_BURST_BYTES, ge=MIN_BURST_BYTES, le=100_000_000)


class Drop(StrEnum):
    CUT = "cut"
    LOSS = "loss"
    QUEUE = "queue"


class DirectionStats(BaseModel):
    model_config = ConfigDict(extra="forbid")

    offered: int = 0
    delivered: int = 0
    delivered_bytes: int = 0
    dropped_cut: int = 0
    dropped_loss: int = 0
    dropped_queue: int = 0
    in_flight: int = 0
    last_delivered_at: float | None = None


class LinkDirection(Generic[FrameT]):
    def __init__(self, rand: Callable[[], float]) -> None:
        self._rand = rand
        self.faults = Faults()
        self.cut = False
        self.stats = DirectionStats()
        self._in_flight: deque[tuple[float, int, FrameT]] = deque()
        self._last_at = float("-inf")
        # Token bucket: tokens (bytes) as of `_tokens_at`, which is also when the frame last
        # admitted leaves the rate queue (the queue is FIFO, so the next one starts there).
        self._tokens = 0.0
        self._tokens_at = 0.0

    def set_faults(self, faults: Faults) -> None:
        """New faults apply to frames offered from now on; frames in flight keep their time."""
        if self.faults.rate_kbit is None:
            self._tokens = float(faults.burst_bytes)  # a new rate limit starts with a full bucket
        self._tokens = min(self._tokens, float(faults.burst_bytes))
        self.faults = faults

    def set_cut(self, cut: bool, now: float) -> None:
        """A cut also loses what was on its way: queued and propagating frames alike."""
        if cut and not self.cut:
            self.stats.dropped_cut += len(self._in_flight)
            self._in_flight.clear()
            self._tokens = float(self.faults.burst_bytes)
            self._tokens_at = now
        self.cut = cut
        self.stats.in_flight = len(self._in_flight)

    def offer(self, frame: FrameT, size: int, now: float) -> float | Drop:
        """Take one frame of `size` bytes: the time it will be due, or why it was dropped."""
        self.stats.offered += 1
        faults = self.faults
        if self.cut:
            self.stats.dropped_cut += 1
            return Drop.CUT
        if faults.loss and self._rand() < faults.loss:
            self.stats.dropped_loss += 1
            return Drop.LOSS
        leaves = now
        if faults.rate_kbit is not None:
            admitted = self._shape(size, now, faults.rate_kbit * 125.0, faults)
            if admitted is None:
                self.stats.dropped_queue += 1
                return Drop.QUEUE
            leaves = admitted
        spread = (2.0 * self._rand() - 1.0) * faults.jitter_ms if faults.jitter_ms else 0.0
        due = max(leaves + max(0.0, faults.delay_ms + spread) / 1000.0, self._last_at)
        self._last_at = due
        self._in_flight.append((due, size, frame))
        self.stats.in_flight = len(self._in_flight)
        return due

    def _shape(self, size: int, now: float, bytes_per_s: float, faults: Faults) -> float | None:
        start = max(now, self._tokens_at)
        refill = (start - self._tokens_at) * bytes_per_s
        tokens = min(float(faults.burst_bytes), self._tokens + refill)
        if tokens >= size:
            leaves, tokens = start, tokens - size
        else:
            leaves, tokens = start + (size - tokens) / bytes_per_s, 0.0
        if leaves - now > faults.queue_ms / 1000.0:
            return None
        self._tokens, self._tokens_at = tokens, leaves
        return leaves

    def due(self, now: float) -> list[FrameT]:
        """Frames whose time has come, in order; they count as delivered."""
        out: list[FrameT] = []
        while self._in_flight and self._in_flight[0][0] <= now:
            _, size, frame = self._in_flight.popleft()
            out.append(frame)
            self.stats.delivered_bytes += size
        if out:
            self.stats.delivered += len(out)
            self.stats.last_delivered_at = now
            self.stats.in_flight = len(self._in_flight)
        return out

    def next_due(self) -> float | None:
        return self._in_flight[0][0] if self._in_flight else None
