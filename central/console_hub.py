"""The pages' live picture of the fleet: unit summaries kept current from the fleet service,
the streams the relay carries, and the feed every console and patrol page follows (Server-Sent
Events, see `central/live_feed.py` for ids, catch-up and slow pages).

Units that changed are sent together every `UNIT_FLUSH_S`, so that 5,000 moving units cost a
page a few events a second, not thousands; the map's spatial index is kept here too, for the
shares and group recording that ask who is near a scene.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import BaseModel
from pydantic_core import to_json

from central.db.engine import Database
from central.db.users import Users
from central.fleet import FleetService, ReceivedEvent
from central.live_feed import (
    CONSOLE,
    UNIT_PREFIX,
    FeedEvent,
    FeedLog,
    PageQueue,
    unit_audience,
)
from central.nearby import NearbyIndex
from central.registry import UnitRecord
from central.streams import StreamService, StreamView
from central.unit_board import Reading, UnitSummary, reading_of, summarize
from protocol import Topic, UnitState, decode

log = structlog.get_logger("rtcc.console")

UNIT_FLUSH_S = 0.5
STREAMS_EVERY_S = 1.0
OFFICERS_EVERY_S = 10.0
KEEPALIVE_S = 15.0
RECHECK_ACCESS_S = 15.0
MAX_PAGES = 500
FLUSH_CHUNK = 250
RECENT_EVENTS_PER_UNIT = 20

CONSOLE_ONLY = frozenset({CONSOLE})

SnapshotPart = Callable[[str], Awaitable[dict[str, Any]]]


def encode(data: BaseModel | dict[str, Any]) -> bytes:
    """JSON of a model or of plain data holding models (pydantic's encoder: three times
    quicker than the standard library's on a fleet's summaries)."""
    return to_json(data)


def sse(event_id: str, name: str, data: bytes) -> bytes:
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (event_id.encode(), name.encode(), data)


@dataclass(eq=False)
class Page:
    queue: PageQueue
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class ConsoleHub:
    def __init__(
        self,
        fleet: FleetService,
        streams: StreamService,
        database: Database,
        page_queue: int,
        feed_history: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fleet = fleet
        self.streams = streams
        self.database = database
        self.index = NearbyIndex()
        self.feed = FeedLog(feed_history, secrets.token_hex(4))
        self.streams_live: dict[str, StreamView] = {}
        self._stream_of_unit: dict[str, str] = {}  # derived from streams_live, for summaries
        self.officers: dict[str, list[str]] = {}
        self.alerting: set[str] = set()  # units with an open alert (kept by the alert desk)
        # Called with each unit's record and reading after it changed (the alert desk's own).
        self.unit_listeners: list[Callable[[UnitRecord, Reading | None], None]] = []
        # The fields of each unit's last state the pages show, read as the state arrives.
        self.readings: dict[str, Reading] = {}
        self.snapshot_parts: list[SnapshotPart] = []
        self._page_queue = page_queue
        self._pages: set[Page] = set()
        self._dirty: set[str] = set()
        self._clock = clock
        self.recent_events: dict[str, deque[ReceivedEvent]] = {}
        fleet.unit_listeners.append(self._unit_changed)
        fleet.event_listeners.append(self._remember)

    def _unit_changed(self, unit_id: str, state: UnitState | None) -> None:
        if state is not None:
            self._keep(unit_id, reading_of(state))
        self._dirty.add(unit_id)

    def _keep(self, unit_id: str, reading: Reading) -> Reading:
        """The unit's reading, and its place in the index (shares and group recording ask
        it at once, not after the next flush)."""
        self.readings[unit_id] = reading
        lat, lon = reading["lat"], reading["lon"]
        if lat is not None and lon is not None:
            self.index.update(unit_id, lat, lon)
        return reading

    def _remember(self, received: ReceivedEvent) -> None:
        kept = self.recent_events.get(received.unit_id)
        if kept is None:
            kept = self.recent_events[received.unit_id] = deque(maxlen=RECENT_EVENTS_PER_UNIT)
        kept.append(received)

    # ---- the feed --------------------------------------------------------------------------

    def publish(self, name: str, data: BaseModel | dict[str, Any], audiences: set[str]) -> None:
        self._offer(self.feed.add(name, encode(data), audiences))

    def _offer(self, event: FeedEvent) -> None:
        for page in self._pages:
            if not page.queue.offer(event):
                log.info("page_resync", audience=page.queue.audience, reason="queue full")
            page.wake.set()

    def mark_changed(self, unit_id: str) -> None:
        """The unit's summary is to be sent again (its alerts or stream changed)."""
        self._dirty.add(unit_id)

    async def follow(
        self, audience: str, last_event_id: str | None, still_allowed: Callable[[], Awaitable[bool]]
    ) -> AsyncIterator[bytes]:
        """One page's event stream: what it missed since `last_event_id` if that is still
        kept, else a snapshot; then every event for its audience as it comes. Ends when the
        caller's access ends (checked every RECHECK_ACCESS_S)."""
        if len(self._pages) >= MAX_PAGES:
            yield b"event: busy\ndata: {}\n\n"
            return
        page = Page(PageQueue(audience, self._page_queue))
        self._pages.add(page)
        try:
            for frame in await self._start(audience, last_event_id):
                yield frame
            checked = self._clock()
            while True:
                try:
                    await asyncio.wait_for(page.wake.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                page.wake.clear()
                if self._clock() - checked >= RECHECK_ACCESS_S:
                    checked = self._clock()
                    if not await still_allowed():
                        yield b"event: signed_out\ndata: {}\n\n"
                        return
                if page.queue.resync:
                    page.queue.resync = False
                    yield await self._snapshot(audience)
                    continue
                for event in page.queue.take():
                    yield self._frame(event)
        finally:
            self._pages.discard(page)

    async def _start(self, audience: str, last_event_id: str | None) -> list[bytes]:
        """What a page is sent first: what it missed since `last_event_id`, when the log
        still knows, else a snapshot."""
        seen = self.feed.parse_id(last_event_id)
        missed = None if seen is None else self.feed.since(seen, audience)
        if missed is None:
            return [await self._snapshot(audience)]
        frames = [self._frame(event) for event in missed.events]
        summaries = [s for s in map(self.summary, missed.units) if s is not None]
        if summaries:
            data = encode({"units": summaries})
            frames.append(sse(self.feed.id_text(missed.last_id), "units", data))
        return frames

    def _frame(self, event: FeedEvent) -> bytes:
        return sse(self.feed.event_id(event), event.name, event.data)

    async def _snapshot(self, audience: str) -> bytes:
        """Everything the page shows, as of the feed's last event (later events are sent
        after it, and repeat nothing it cannot take twice)."""
        await self._load_officers()
        last = self.feed.id_text(self.feed.last_id)
        body: dict[str, Any] = {"units": [], "alerts": [], "streams": [], "shares": []}
        if audience == CONSOLE:
            body["units"] = [
                self._summarize(r, self.reading(r)) for r in self.fleet.registry.units()
            ]
            body["streams"] = list(self.streams_live.values())
        else:
            own = self.summary(audience.removeprefix(UNIT_PREFIX))
            body["units"] = [own] if own is not None else []
        for part in self.snapshot_parts:
            body.update(await part(audience))
        return sse(last, "snapshot", encode(body))

    # ---- keeping the picture current -------------------------------------------------------

    async def run(self) -> None:
        self._dirty.update(record.unit_id for record in self.fleet.registry.units())
        await self._load_officers()
        streams_due = officers_due = self._clock()
        while True:
            await asyncio.sleep(UNIT_FLUSH_S)
            now = self._clock()
            if now >= officers_due:
                officers_due = now + OFFICERS_EVERY_S
                await self._load_officers()
            if now >= streams_due:
                streams_due = now + STREAMS_EVERY_S
                await self.refresh_streams()
            await self.flush_units()

    async def flush_units(self) -> None:
        """Sends the units that changed, FLUSH_CHUNK at a time: the loop serves others
        between chunks (5,000 units moving at once are a few milliseconds each)."""
        dirty, self._dirty = self._dirty, set()
        pending = sorted(dirty)
        for start in range(0, len(pending), FLUSH_CHUNK):
            if start:
                await asyncio.sleep(0)
            self._flush_chunk(pending[start : start + FLUSH_CHUNK])

    def _flush_chunk(self, unit_ids: list[str]) -> None:
        """Keeps the alert watch current, notes the changes in the log and sends them to
        the pages that follow (summaries are built only for those)."""
        watched = {page.queue.audience for page in self._pages}
        console = CONSOLE in watched
        changed: list[UnitSummary] = []
        present: list[str] = []
        single: list[tuple[str, UnitSummary]] = []
        for unit_id in unit_ids:
            record = self.fleet.registry.get(unit_id)
            if record is None:
                continue
            present.append(unit_id)
            reading = self.reading(record)
            for listener in self.unit_listeners:
                listener(record, reading)
            audience = unit_audience(unit_id)
            if console or audience in watched:
                summary = self._summarize(record, reading)
                if console:
                    changed.append(summary)
                if audience in watched:
                    single.append((audience, summary))
        if not present:
            return
        number = self.feed.units_changed(present)
        if changed:
            self._offer(FeedEvent(number, "units", encode({"units": changed}), CONSOLE_ONLY))
        for audience, summary in single:
            data = encode({"units": [summary]})
            self._offer(FeedEvent(number, "units", data, frozenset({audience})))

    def summary(self, unit_id: str) -> UnitSummary | None:
        """What the pages show of the unit now."""
        record = self.fleet.registry.get(unit_id)
        return None if record is None else self._summarize(record, self.reading(record))

    def reading(self, record: UnitRecord) -> Reading | None:
        return self.readings.get(record.unit_id) or self._read(record)

    def _read(self, record: UnitRecord) -> Reading | None:
        """A state the registry took before this hub listened (retained, at start)."""
        if record.state_payload is None:
            return None
        state = decode(Topic.state(record.unit_id), record.state_payload).envelope.body
        return self._keep(record.unit_id, reading_of(state))

    def _summarize(self, record: UnitRecord, reading: Reading | None) -> UnitSummary:
        unit_id = record.unit_id
        logins = self.officers.get(unit_id)
        stream_id = self._stream_of_unit.get(unit_id)
        officer = ", ".join(logins) if logins else None
        alerting = unit_id in self.alerting
        online, seen = record.online, record.last_seen
        return summarize(unit_id, online, seen, reading, officer, stream_id, alerting)

    async def refresh_officers(self) -> None:
        """Reads the patrol logins now (a share must reach a login added a moment ago)."""
        await self._load_officers()

    async def _load_officers(self) -> None:
        try:
            found = await asyncio.to_thread(self._officers)
        except Exception as exc:  # the database may be briefly away: keep the last known
            log.warning("officers_not_loaded", error=str(exc)[:200])
            return
        before, self.officers = self.officers, found
        self._dirty.update(u for u in found.keys() | before.keys() if found.get(u) != before.get(u))

    def _officers(self) -> dict[str, list[str]]:
        with self.database.read() as tx:
            return Users(tx).patrol_logins()

    async def refresh_streams(self) -> None:
        """Asks the relay for its streams now (and every STREAMS_EVERY_S)."""
        try:
            views = {view.stream_id: view for view in await self.streams.list()}
        except Exception as exc:  # a relay worker restarting: the next round asks again
            log.warning("streams_not_listed", error=str(exc)[:200])
            return
        before = self.streams_live
        self.streams_live = views
        self._stream_of_unit = {view.unit_id: view.stream_id for view in views.values()}
        for stream_id, view in views.items():
            old = before.get(stream_id)
            if old is None or (old.state, old.live, old.codec) != (
                view.state,
                view.live,
                view.codec,
            ):
                self.publish("stream", view.model_dump(mode="json") | {"ended": False}, {CONSOLE})
                self._dirty.add(view.unit_id)
        for stream_id in before.keys() - views.keys():
            ended = before[stream_id].model_dump(mode="json") | {"ended": True, "live": False}
            self.publish("stream", ended, {CONSOLE})
            self._dirty.add(before[stream_id].unit_id)
