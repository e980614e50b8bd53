"""Per-session sequence tracking with a reorder window (pure).

MQTT orders messages per topic only; Mosquitto happens to keep one client's messages in
order across topics, NATS does not. So a seq that skips ahead is not yet a loss: it becomes
a gap only when the hole stays open for `grace_s`, or when more than `window` later
messages have arrived past it. Sequence numbers never decide whether an event is kept:
that is done by message id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GAP_GRACE_S = 2.0
REORDER_WINDOW = 64


@dataclass
class SequenceTracker:
    """`contiguous` is the highest seq up to which nothing is missing."""

    contiguous: int
    grace_s: float = GAP_GRACE_S
    window: int = REORDER_WINDOW
    _ahead: set[int] = field(default_factory=set)
    _hole_since: float | None = None

    @property
    def has_hole(self) -> bool:
        return bool(self._ahead)

    @property
    def highest(self) -> int:
        return max(self._ahead, default=self.contiguous)

    def seen(self, seq: int) -> bool:
        return seq <= self.contiguous or seq in self._ahead

    def add(self, seq: int, now: float) -> bool:
        """Record one seq; True if this closes an unrecoverable gap (ask for a rebirth)."""
        if self.seen(seq):
            return False
        if seq == self.contiguous + 1:
            self.contiguous = seq
            while self.contiguous + 1 in self._ahead:
                self.contiguous += 1
                self._ahead.remove(self.contiguous)
            if not self._ahead:
                self._hole_since = None
        else:
            self._ahead.add(seq)
            if self._hole_since is None:
                self._hole_since = now
        return self.expire(now, force=len(self._ahead) > self.window)

    def expire(self, now: float, force: bool = False) -> bool:
        """Give up on a hole that stayed open too long; True if it did."""
        if self._hole_since is None:
            return False
        if not force and now - self._hole_since < self.grace_s:
            return False
        self.contiguous = self.highest
        self._ahead.clear()
        self._hole_since = None
        return True
