"""The pages' live feed (pure): numbered events kept for catch-up, and one bounded queue per
page.

Every event has an id (1, 2, ...) and the audiences it is for (`console`, or `unit:<id>` for
a patrol login's vehicle). A page that reconnects says the last id it saw and gets what it
missed, when the log still holds it; a page too slow to keep up (its queue full) or asking
for what the log has forgotten is told to start over from a snapshot: one slow page never
holds events back from the others, and nothing it is told is stale.

Unit changes are the bulk (5,000 moving units change every second) and only their latest
summary matters: the log keeps, per unit, the id of its last change instead of the events,
and a page catching up gets the current summaries of the units changed since its id. So a
change costs the log one dict entry, and summaries are built and encoded only for pages
that follow (or catch up), not for the log.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

CONSOLE = "console"


UNIT_PREFIX = "unit:"


def unit_audience(unit_id: str) -> str:
    return UNIT_PREFIX + unit_id


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


@dataclass(frozen=True, slots=True)
class CatchUp:
    """What a page missed: the events of its audience in order, then the units (of its
    audience) that changed since, whose current summaries it is to be sent, as of `last_id`."""

    events: list[FeedEvent]
    units: list[str]
    last_id: int


class FeedLog:
    """The last `history` events, by id, and no more than `max_bytes` of them, plus the id of
    each unit's last change. Ids a page sees are `<generation>.<n>`: a page that saw another
    process's (or an earlier run's) ids starts over."""

    def __init__(self, history: int, generation: str, max_bytes: int = 8 * 2**20) -> None:
        self.generation = generation
        self.history = history
        self.max_bytes = max_bytes
        self._events: deque[FeedEvent] = deque()
        self._bytes = 0
        self._next = 1
        self._forgotten = 0  # the highest id of an event no longer kept
        self._unit_changed: dict[str, int] = {}

    def event_id(self, event: FeedEvent) -> str:
        return self.id_text(event.id)

    def id_text(self, number: int) -> str:
        return f"{self.generation}.{number}"

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
            dropped = self._events.popleft()
            self._bytes -= len(dropped.data)
            self._forgotten = dropped.id
        return event

    def units_changed(self, unit_ids: Iterable[str]) -> int:
        """Notes that the units changed; the id their change goes out with."""
        number = self._next
        self._next += 1
        changed = self._unit_changed
        for unit_id in unit_ids:
            changed[unit_id] = number
        return number

    def since(self, last_seen: int, audience: str) -> CatchUp | None:
        """What `audience` missed after `last_seen`; None when some of it is no longer kept
        (or the id is not one this log gave: another center process, a restart), so that
        the page must start from a snapshot."""
        if last_seen > self.last_id or last_seen < self._forgotten:
            return None
        events: list[FeedEvent] = []
        for event in reversed(self._events):
            if event.id <= last_seen:
                break
            if audience in event.audiences:
                events.append(event)
        events.reverse()
        if audience == CONSOLE:
            units = [u for u, at in self._unit_changed.items() if at > last_seen]
        else:
            unit_id = audience.removeprefix(UNIT_PREFIX)
            units = [unit_id] if self._unit_changed.get(unit_id, 0) > last_seen else []
        return CatchUp(events, units, self.last_id)
