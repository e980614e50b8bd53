"""How often a repeated event is written to the audit log (pure: time comes in).

Some events repeat fast and say nothing new each time: a CAD integration's key used every
second, or a script hammering the API with a wrong key. The first one in a window is
recorded at once; those after it are counted, and the first one after the window is
recorded with how many were folded in since. The table is bounded: when full, keys not seen
for a window are forgotten, and past that the oldest.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(slots=True)
class _Seen:
    recorded_at: float
    folded: int = 0


class AuditTally:
    def __init__(self, window_s: float = 60.0, max_keys: int = 10_000) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._seen: dict[Hashable, _Seen] = {}

    def due(self, key: Hashable, now: float) -> int | None:
        """None when this occurrence is only counted; else a record is due now, and this
        is how many occurrences since the last record it stands for besides itself."""
        seen = self._seen.get(key)
        if seen is not None and now - seen.recorded_at < self.window_s:
            seen.folded += 1
            return None
        self._make_room(now)
        self._seen[key] = _Seen(now)
        return seen.folded if seen is not None else 0

    def unrecorded(self, key: Hashable, folded: int) -> None:
        """The record `due` asked for (standing for `folded` besides itself) could not be
        written: the next occurrence is due at once and stands for those and that one too."""
        since = self._seen.get(key)  # occurrences counted while the write was under way
        self._seen[key] = _Seen(-math.inf, folded + 1 + (since.folded if since else 0))

    def _make_room(self, now: float) -> None:
        if len(self._seen) < self.max_keys:
            return
        for key, seen in list(self._seen.items()):
            if now - seen.recorded_at >= self.window_s:
                del self._seen[key]
        while len(self._seen) >= self.max_keys:
            del self._seen[next(iter(self._seen))]
