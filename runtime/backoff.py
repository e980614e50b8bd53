"""Retry delays: exponential growth, capped, with full jitter (a value object, no clock)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


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
