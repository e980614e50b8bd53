"""Retry delays: exponential growth, capped, with full jitter (value objects, no clock)."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backoff:
    """Full jitter: the delay is uniform in [0, min(cap, initial * factor**attempt)], so a
    fleet that lost its broker together does not come back in lock-step."""

    initial_s: float = 0.5
    max_s: float = 20.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not (0 < self.initial_s <= self.max_s) or self.factor < 1:
            raise ValueError("need 0 < initial_s <= max_s and factor >= 1")

    def ceiling(self, attempt: int) -> float:
        return min(self.max_s, self.initial_s * self.factor ** min(attempt, 64))

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        return rand() * self.ceiling(attempt)


@dataclass(slots=True)
class Retry:
    """The attempt count of one retry loop on a `Backoff`: failures grow the next delay, a
    success (or a run that lasted `healthy_after_s`) starts it over. The loop measures
    how long a run lasted and does the waiting itself (some waits are cut short)."""

    backoff: Backoff
    healthy_after_s: float = math.inf
    rand: Callable[[], float] = random.random
    attempt: int = field(default=0, init=False)

    def failed(self) -> None:
        self.attempt += 1

    def reset(self) -> None:
        self.attempt = 0

    def ended(self, lasted_s: float) -> None:
        """A run ended after `lasted_s`: a long one was healthy, a short one failed."""
        if lasted_s >= self.healthy_after_s:
            self.reset()
        else:
            self.failed()

    def delay(self) -> float:
        """The wait before the next attempt."""
        return self.backoff.delay(self.attempt, self.rand)
