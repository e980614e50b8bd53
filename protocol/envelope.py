"""The one stamper that numbers a sender's messages into envelopes (see models.Envelope)."""

from __future__ import annotations

import uuid
from typing import Any

from protocol.codec import encode
from protocol.models import ContractModel, Envelope
from protocol.topics import Topic


class Stamper:
    """One sender's numbering: `session(sid, ...)` starts a connection and returns its Last
    Will stamped with seq 0; every message sent on it after that counts from 1."""

    def __init__(self) -> None:
        self.sid = 0
        self.seq = 0

    def session(self, sid: int, will_topic: Topic, will: ContractModel, ts: float) -> bytes:
        self.sid, self.seq = sid, 0
        return self._encode(will_topic, will, 0, ts, None)

    def stamp(
        self, topic: Topic, body: ContractModel, ts: float, msg_id: uuid.UUID | None = None
    ) -> bytes:
        """The next message of this session; `msg_id` keeps a resent message's id."""
        self.seq += 1
        return self._encode(topic, body, self.seq, ts, msg_id)

    def _encode(
        self, topic: Topic, body: ContractModel, seq: int, ts: float, msg_id: uuid.UUID | None
    ) -> bytes:
        envelope: Envelope[Any] = Envelope(
            id=msg_id or uuid.uuid4(), sid=self.sid, seq=seq, ts=ts, body=body
        )
        return encode(topic, envelope)
