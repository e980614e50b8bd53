"""The pages' live feed (pure): numbered events kept for catch-up, and one bounded queue per
page.

Every event has an id (1, 2, ...) and the audiences it is for (`console`, or `unit:<id>` for
a patrol login's vehicle). A page that reconnects says the last id it saw and gets what it
missed, when the log still holds it; a page too slow to keep up (its queue full) or asking
for what the log has forgotten is told to start over from a snapshot: one slow page never
holds events back from the others, and nothing it is told is stale.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

CONSOLE = "console"


def unit_audience(unit_id: str) -> str:
    return f"unit:{unit_id}"


@dataclass(frozen=True, slots=True)
class FeedEvent:
    id: int
    name: str
    data: bytes  # JSON, encoded once for every page
    audiences: frozenset[str]


@dataclass
class PageQueue:
    """What one page has yet to be sent; `resync` says it must start over."""

    audience: str
    bound: int
    pending: deque[FeedEvent] = field(default_factory=deque)
    resync: bool = False

    def offer(self, event: FeedEvent) -> bool:
        """Queues `event` if it is for this page; False when that made the page resync."""
        if self.audience not in event.audiences or self.resync:
            return True
        if len(self.pending) >= self.bound:
            self.pending.clear()
            self.resync = True
            return False
        self.pending.append(event)
        return True

    def take(self) -> list[FeedEvent]:
        taken = list(self.pending)
        self.pending.clear()
        return taken


class FeedLog:
    """The last `history` events, by id, and no more than `max_bytes` of them. Ids a page
    sees are `<generation>.<n>`: a page that saw another process's (or an earlier run's) ids
    starts over."""

    def __init__(self, history: int, generation: str, max_bytes: int = 8 * 2**20) -> None:
        self.generation = generation
        self.history = history
        self.max_bytes = max_bytes
        self._events: deque[FeedEvent] = deque()
        self._bytes = 0
        self._next = 1

    def event_id(self, event: FeedEvent) -> str:
        return f"{self.generation}.{event.id}"

    def parse_id(self, text: str | None) -> int | None:
        """The number in a page's Last-Event-ID, if it is one of ours."""
        if not text:
            return None
        generation, _, number = text.partition(".")
        if generation != self.generation or not number.isdigit() or len(number) > 18:
            return None
        return int(number)

    @property
    def last_id(self) -> int:
        return self._next - 1

    def add(self, name: str, data: bytes, audiences: Iterable[str]) -> FeedEvent:
        event = FeedEvent(self._next, name, data, frozenset(audiences))
        self._next += 1
        self._events.append(event)
        self._bytes += len(data)
        while len(self._events) > self.history or (
            self._bytes > self.max_bytes and len(self._events) > 1
        ):
            self._bytes -= len(self._events.popleft().data)
        return event

    def since(self, last_seen: int, audience: str) -> list[FeedEvent] | None:
        """The events after `last_seen` for `audience`; None when some of them are no
        longer kept (or the id is not one this log gave: another center process, a
        restart), so that the page must start from a snapshot."""
        if last_seen > self.last_id:
            return None
        if last_seen == self.last_id:
            return []
        oldest = self._events[0].id if self._events else self._next
        if last_seen < oldest - 1:
            return None
        start = last_seen - oldest + 1
        return [e for e in list(self._events)[start:] if audience in e.audiences]
