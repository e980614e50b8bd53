"""Which streams should be live, and what to do about those that are not (pure: no I/O,
no clock; time comes in as arguments).

A remote start or an alert adds a desired stream: one per unit, for whom and until when.
The center then reconciles continuously: whatever the relay reports (media arriving or
not), whatever happens to the unit (it reconnects, restarts) or to the relay (a worker
restarted), a desired stream without media is asked for again, with jittered backoff,
until it is live, stopped or expired. Live means media arrived recently, never merely
that a relay worker still lists a session.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from protocol.topics import check_id
from runtime.backoff import Backoff

# After a unit's birth, give the unit this long to resume publishing by itself (it keeps
# what it was asked to stream across restarts) before telling it again.
BIRTH_GRACE_S = 3.0
# After a stream.start succeeded, media should follow within this long.
MEDIA_GRACE_S = 3.0
# When media stops, the publisher's own watchdog usually rebuilds within this long.
SELF_HEAL_GRACE_S = 2.0
RETRY = Backoff(initial_s=0.5, max_s=10.0)


class DesiredStreamRecord(BaseModel):
    """What is kept across restarts of the center."""

    model_config = ConfigDict(extra="forbid")

    stream_id: Annotated[str, AfterValidator(check_id)]
    unit_id: Annotated[str, AfterValidator(check_id)]
    requested_by: str = Field(max_length=128)
    reason: str = Field(default="", max_length=512)
    created: float = Field(ge=0, le=32503680000, allow_inf_nan=False)
    until: float = Field(ge=0, le=32503680000, allow_inf_nan=False)


class ActionKind(StrEnum):
    START = "start"
    STOP = "stop"


@dataclass
class DesiredStream:
    record: DesiredStreamRecord
    live: bool = False
    last_live: float | None = None
    start_sent: float | None = None
    # Numbers each stream.start, so the answer to an earlier one cannot settle a later one.
    attempt_id: int = 0
    attempts: int = 0
    next_try: float = 0.0
    starts: int = 0

    @property
    def stream_id(self) -> str:
        return self.record.stream_id

    @property
    def unit_id(self) -> str:
        return self.record.unit_id


@dataclass(frozen=True, slots=True)
class Action:
    kind: ActionKind
    stream: DesiredStream
    attempt_id: int = 0
    # Whether the unit should rebuild even if it believes it is publishing.
    republish: bool = False


@dataclass
class StreamPlan:
    start_timeout_s: float = 10.0
    retry: Backoff = RETRY
    rand: Callable[[], float] = random.random
    _streams: dict[str, DesiredStream] = field(default_factory=dict)

    # ---- what is wanted ---------------------------------------------------------------

    def want(
        self,
        unit_id: str,
        requested_by: str,
        reason: str,
        until: float,
        now: float,
        new_id: Callable[[], str],
    ) -> tuple[DesiredStream, bool]:
        """The unit's desired stream (extended to `until`) and whether it is new."""
        existing = self.for_unit(unit_id)
        if existing is not None:
            if until > existing.record.until:
                existing.record = existing.record.model_copy(update={"until": until})
            return existing, False
        record = DesiredStreamRecord(
            stream_id=new_id(),
            unit_id=unit_id,
            requested_by=requested_by[:128],
            reason=reason[:512],
            created=now,
            until=until,
        )
        stream = DesiredStream(record)
        self._streams[record.stream_id] = stream
        return stream, True

    def restore(self, records: Iterable[DesiredStreamRecord], now: float) -> None:
        """Desired streams kept from before a restart (expired ones are dropped, and one
        per unit is kept)."""
        for record in records:
            if record.until > now and self.for_unit(record.unit_id) is None:
                # Whatever the unit does now, it was for the center before the restart.
                self._streams[record.stream_id] = DesiredStream(record, next_try=now, starts=1)

    def remove(self, stream_id: str) -> DesiredStream | None:
        return self._streams.pop(stream_id, None)

    def get(self, stream_id: str) -> DesiredStream | None:
        return self._streams.get(stream_id)

    def for_unit(self, unit_id: str) -> DesiredStream | None:
        return next((s for s in self._streams.values() if s.unit_id == unit_id), None)

    def streams(self) -> list[DesiredStream]:
        return list(self._streams.values())

    def records(self) -> list[DesiredStreamRecord]:
        return [s.record for s in self._streams.values()]

    # ---- what is observed -------------------------------------------------------------

    def observe(self, stream_id: str, live: bool, now: float) -> None:
        """What the relay says about the stream's media right now."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if live:
            stream.live, stream.last_live, stream.attempts = True, now, 0
            stream.start_sent = None
        elif stream.live:
            stream.live = False
            stream.next_try = max(stream.next_try, now + SELF_HEAL_GRACE_S)

    def unit_born(self, unit_id: str, now: float) -> None:
        """The unit (re)connected or restarted: whatever was sent before may be moot."""
        stream = self.for_unit(unit_id)
        if stream is not None and not stream.live:
            stream.start_sent, stream.attempts = None, 0
            stream.attempt_id += 1
            stream.next_try = now + BIRTH_GRACE_S

    def relay_lost(self, stream_ids: Iterable[str], now: float) -> None:
        """These streams' relay worker was restarted: their media is gone, ask at once."""
        for stream_id in stream_ids:
            stream = self._streams.get(stream_id)
            if stream is not None:
                stream.live, stream.start_sent, stream.attempts = False, None, 0
                stream.attempt_id += 1
                stream.next_try = now

    def start_finished(
        self, stream_id: str, ok: bool, now: float, attempt_id: int | None = None
    ) -> None:
        """The unit's answer to stream.start number `attempt_id` (None: the latest)."""
        stream = self._streams.get(stream_id)
        if stream is None or (attempt_id is not None and attempt_id != stream.attempt_id):
            return
        stream.start_sent = None
        if ok:
            stream.next_try = now + MEDIA_GRACE_S
        else:
            stream.attempts += 1
            stream.next_try = now + self.retry.delay(stream.attempts, self.rand)

    # ---- what to do -------------------------------------------------------------------

    def due(self, now: float, online: Callable[[str], bool]) -> list[Action]:
        """The actions to take now. A start is marked as sent; a stop removes the stream."""
        actions: list[Action] = []
        for stream in list(self._streams.values()):
            if now >= stream.record.until:
                del self._streams[stream.stream_id]
                actions.append(Action(ActionKind.STOP, stream))
                continue
            if stream.live or not online(stream.unit_id):
                continue
            if stream.start_sent is not None and now - stream.start_sent < self.start_timeout_s:
                continue
            if stream.start_sent is not None:
                # No answer in time: count it as a failure, back off, ignore a late answer.
                self.start_finished(stream.stream_id, False, now)
                stream.attempt_id += 1
            if now >= stream.next_try:
                attempt_id, republish = self.begin_start(stream, now)
                actions.append(Action(ActionKind.START, stream, attempt_id, republish))
        return actions

    def begin_start(self, stream: DesiredStream, now: float) -> tuple[int, bool]:
        """A stream.start goes out now: its attempt id, and whether the unit was asked
        before (so it should rebuild whatever it has)."""
        stream.start_sent = now
        stream.starts += 1
        stream.attempt_id += 1
        return stream.attempt_id, stream.starts > 1
