"""The fleet registry (pure): what the center knows of each unit, fed one message at a time.

Rules (sid = the unit's connection session, seq = its message counter in that session,
seq 0 = the Last Will composed at connect, live messages count from 1):
- An event or result id seen recently for the unit is a repeat (store-and-forward resends):
  dropped. Presence and state need no ids: the sequence rules cover them.
- Presence: an older session's presence is stale (a late Will after a reconnect).
- A live message whose seq skips ahead in the current session, or that opens a newer
  session past its first message, means something was lost: the caller asks for a rebirth.
- Retained messages (delivered on subscribe) update what we know but never count as gaps.
"""

from __future__ import annotations

import uuid
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from enum import StrEnum

from protocol import Message, Presence, Topic, TopicKind, UnitState, decode

# Repeats come from the agent's outbox re-sending what was in flight (at most its window of
# 32) when a connection dropped; a few times that covers them at a small cost per unit.
RECENT_IDS_PER_UNIT = 128
REBIRTH_MIN_INTERVAL_S = 5.0
_STORED_KINDS = frozenset({TopicKind.EVENT, TopicKind.RESULT})


class Outcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    NOT_MINE = "not_mine"


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
    last_seq: int | None = None
    state_ts: float | None = None
    # The last state is kept as the validated payload's bytes and parsed again on demand:
    # bytes are invisible to the garbage collector, while a model graph per unit, replaced
    # every second, makes full collections (and their pauses) frequent in a large fleet.
    state_payload: bytes | None = field(default=None, repr=False)
    _state_cache: UnitState | None = field(default=None, repr=False)
    last_seen: float | None = None
    presence_since: float | None = None
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
    def __init__(self, partition: Partition = Partition()) -> None:
        self.partition = partition
        self._units: dict[str, UnitRecord] = {}

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
            record = self._units[unit_id] = UnitRecord(unit_id)
        envelope = message.envelope
        kind = message.topic.kind
        if kind in _STORED_KINDS and record.seen_before(envelope.id):
            return Verdict(Outcome.DUPLICATE)
        if kind is TopicKind.PRESENCE:
            return self._presence(record, message, now)
        if message.topic.kind is TopicKind.STATE and envelope.sid < record.sid:
            return Verdict(Outcome.STALE)
        verdict = self._sequence(record, envelope.sid, envelope.seq, retained)
        if verdict.outcome is not Outcome.APPLIED:
            return verdict
        if message.topic.kind is TopicKind.STATE:
            record.state_payload = payload
            record._state_cache = None
            record.state_ts = envelope.ts
        if not retained:
            record.last_seen = now
        return verdict

    def _presence(self, record: UnitRecord, message: Message, now: float) -> Verdict:
        envelope = message.envelope
        body: Presence = envelope.body
        if envelope.sid < record.sid:
            return Verdict(Outcome.STALE)
        if body.online:
            # Birth and rebirth are part of the session's sequence.
            same = envelope.sid == record.sid and record.last_seq is not None
            record.last_seq = max(envelope.seq, record.last_seq or 0) if same else envelope.seq
        record.sid = envelope.sid
        changed = record.online != body.online
        record.online = body.online
        if changed:
            record.presence_since = envelope.ts
        record.last_seen = now
        return Verdict(Outcome.APPLIED, presence_changed=changed)

    @staticmethod
    def _sequence(record: UnitRecord, sid: int, seq: int, retained: bool) -> Verdict:
        if sid < record.sid:
            # A late event or result from an older session still counts.
            return Verdict(Outcome.APPLIED)
        if sid > record.sid:
            gap = record.sid >= 0 and not retained and seq > 1
            record.sid, record.last_seq = sid, seq
            return Verdict(Outcome.APPLIED, gap=gap)
        if record.last_seq is None or retained:
            record.last_seq = max(seq, record.last_seq or 0)
            return Verdict(Outcome.APPLIED)
        if seq <= record.last_seq:
            return Verdict(Outcome.DUPLICATE)
        gap = seq > record.last_seq + 1
        record.last_seq = seq
        return Verdict(Outcome.APPLIED, gap=gap)

    def rebirth_due(self, unit_id: str, now: float) -> bool:
        """Rate-limit rebirth requests per unit."""
        record = self._units.get(unit_id)
        if record is None or now - record._last_rebirth < REBIRTH_MIN_INTERVAL_S:
            return False
        record._last_rebirth = now
        return True
