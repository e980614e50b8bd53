"""The fleet registry (pure): what the center knows of each unit, fed one message at a time.

Rules (sid = the unit's connection session, seq = its message counter in that session,
seq 0 = the Last Will composed at connect, live messages count from 1):
- An event or result id seen recently for the unit is a repeat (store-and-forward resends):
  dropped. Nothing else ever drops an event: brokers may reorder across topics.
- Presence: an older session's presence is stale (a late Will after a reconnect).
- State: only a newer state replaces the one we have.
- Sequence gaps (see `SequenceTracker`) mean something was lost on the way: the caller
  asks the unit for a rebirth. Retained messages (delivered on subscribe) never count.
"""

from __future__ import annotations

import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

from central.sequence import SequenceTracker
from protocol import Message, Topic, TopicKind, UnitState, decode

# Repeats come from the agent's outbox re-sending what was in flight (at most its window of
# 32) when a connection dropped; a few times that covers them at a small cost per unit.
RECENT_IDS_PER_UNIT = 128
MAX_UNITS = 100_000
REBIRTH_MIN_INTERVAL_S = 5.0
_STORED_KINDS = frozenset({TopicKind.EVENT, TopicKind.RESULT})


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    NOT_MINE = "not_mine"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    gap: bool = False
    presence_changed: bool = False


@dataclass
class UnitRecord:
    unit_id: str
    online: bool | None = None
    sid: int = -1
    sequence: SequenceTracker | None = None
    tracked_sid: int = -1
    state_ts: float | None = None
    state_order: tuple[int, int] = (-1, -1)
    # The last state is kept as the validated payload's bytes and parsed again on demand:
    # bytes are invisible to the garbage collector, while a model graph per unit, replaced
    # every second, makes full collections (and their pauses) frequent in a large fleet.
    state_payload: bytes | None = field(default=None, repr=False)
    last_seen: float | None = None
    presence_since: float | None = None
    _state_cache: UnitState | None = field(default=None, repr=False)
    _recent: OrderedDict[uuid.UUID, None] = field(default_factory=OrderedDict, repr=False)
    _last_rebirth: float = float("-inf")

    @property
    def state(self) -> UnitState | None:
        if self._state_cache is None and self.state_payload is not None:
            body = decode(Topic.state(self.unit_id), self.state_payload).envelope.body
            self._state_cache = body
        return self._state_cache

    def seen_before(self, msg_id: uuid.UUID) -> bool:
        if msg_id in self._recent:
            return True
        self._recent[msg_id] = None
        if len(self._recent) > RECENT_IDS_PER_UNIT:
            self._recent.popitem(last=False)
        return False


@dataclass(frozen=True)
class Partition:
    """This process owns units whose CRC32(unit_id) % count == index; on every broker,
    shared subscriptions or not, several fleet processes can split the fleet."""

    index: int = 0
    count: int = 1

    def owns(self, unit_id: str) -> bool:
        return self.count == 1 or zlib.crc32(unit_id.encode()) % self.count == self.index


class Registry:
    def __init__(self, partition: Partition = Partition(), max_units: int = MAX_UNITS) -> None:
        self.partition = partition
        self.max_units = max_units
        self._units: dict[str, UnitRecord] = {}
        self._holes: set[str] = set()

    def __len__(self) -> int:
        return len(self._units)

    def get(self, unit_id: str) -> UnitRecord | None:
        return self._units.get(unit_id)

    def units(self) -> list[UnitRecord]:
        return sorted(self._units.values(), key=lambda r: r.unit_id)

    def online_count(self) -> int:
        return sum(1 for r in self._units.values() if r.online)

    def apply(
        self, message: Message, payload: bytes, now: float, retained: bool = False
    ) -> Verdict:
        """Feed one decoded message (`payload` is what it was decoded from)."""
        unit_id = message.topic.subject
        if not self.partition.owns(unit_id):
            return Verdict(Outcome.NOT_MINE)
        record = self._units.get(unit_id)
        if record is None:
            if len(self._units) >= self.max_units:
                return Verdict(Outcome.REFUSED)
            record = self._units[unit_id] = UnitRecord(unit_id)
        envelope = message.envelope
        kind = message.topic.kind
        if kind in _STORED_KINDS and record.seen_before(envelope.id):
            return Verdict(Outcome.DUPLICATE)
        if envelope.sid < record.sid:
            # A late event or result of an older session still counts; nothing else does.
            return Verdict(Outcome.APPLIED if kind in _STORED_KINDS else Outcome.STALE)
        record.sid = max(record.sid, envelope.sid)
        if kind is TopicKind.PRESENCE:
            return self._presence(record, message, now, retained)
        gap = self._track(record, envelope.sid, envelope.seq, now, retained)
        if not retained:
            record.last_seen = now
        if kind is TopicKind.STATE:
            order = (envelope.sid, envelope.seq)
            if order <= record.state_order:
                return Verdict(Outcome.STALE, gap=gap)
            record.state_order = order
            record.state_payload = payload
            record._state_cache = None
            record.state_ts = envelope.ts
        return Verdict(Outcome.APPLIED, gap=gap)

    def mark_offline(self, unit_id: str, now: float) -> bool:
        """Offline without a Will (a unit the broker threw out); whether that changed it."""
        record = self._units.get(unit_id)
        if record is None or not record.online:
            return False
        record.online = False
        record.presence_since = now
        return True

    def _presence(
        self, record: UnitRecord, message: Message, now: float, retained: bool
    ) -> Verdict:
        envelope = message.envelope
        online: bool = envelope.body.online
        # Birth and rebirth are part of the session's sequence; the Will (seq 0) is not.
        gap = online and self._track(record, envelope.sid, envelope.seq, now, retained)
        changed = record.online != online
        record.online = online
        if changed:
            record.presence_since = envelope.ts
        record.last_seen = now
        return Verdict(Outcome.APPLIED, gap=gap, presence_changed=changed)

    def _track(self, record: UnitRecord, sid: int, seq: int, now: float, retained: bool) -> bool:
        """Feed the live sequence; True when a gap is certain. Retained messages are old
        news and take no part."""
        if retained:
            return False
        if record.sequence is None or sid > record.tracked_sid:
            # Having followed the previous session live, a new one must start at seq 1;
            # a unit we are just meeting starts wherever it is.
            following = record.sequence is not None
            record.tracked_sid = sid
            record.sequence = SequenceTracker(contiguous=0 if following else seq)
            if not following:
                return False
        elif sid < record.tracked_sid:
            return False
        gap = record.sequence.add(seq, now)
        if record.sequence.has_hole:
            self._holes.add(record.unit_id)
        return gap

    def expire_holes(self, now: float) -> list[str]:
        """Units whose sequence hole outlived the reorder grace: each is a gap, once."""
        gaps = []
        for unit_id in list(self._holes):
            sequence = self._units[unit_id].sequence
            if sequence is None or not sequence.has_hole:
                self._holes.discard(unit_id)
            elif sequence.expire(now):
                self._holes.discard(unit_id)
                gaps.append(unit_id)
        return gaps

    def rebirth_due(self, unit_id: str, now: float) -> bool:
        """Rate-limit rebirth requests per unit."""
        record = self._units.get(unit_id)
        if record is None or now - record._last_rebirth < REBIRTH_MIN_INTERVAL_S:
            return False
        record._last_rebirth = now
        return True
