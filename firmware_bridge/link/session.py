"""One end of a body-cam link: sequence numbers, acknowledgements, retransmission and
de-duplication on top of the framing. Sans-IO and clock-free: the caller passes `now` and
writes whatever `outgoing()` returns.

Messages whose type is ACKED are acknowledged by the receiver and retransmitted by the
sender (same seq) every `retransmit_s` until acknowledged or `max_attempts` is reached. A
retransmitted frame is acknowledged again but delivered once. HELLO starts a new peer
session (the peer restarted), which clears the de-duplication memory.
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass

from firmware_bridge.link.frames import FrameParser, encode
from firmware_bridge.link.messages import Ack, AckStatus, Hello, LinkMessage


@dataclass(slots=True)
class _Pending:
    message: LinkMessage
    frame: bytes
    attempts: int
    due: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a message that needed an acknowledgement (None: gave up)."""

    message: LinkMessage
    status: AckStatus | None


class LinkSession:
    def __init__(
        self,
        retransmit_s: float = 0.25,
        max_attempts: int = 8,
        max_pending: int = 32,
        dedupe_window: int = 64,
    ) -> None:
        self.parser = FrameParser()
        self.retransmit_s = retransmit_s
        self.max_attempts = max_attempts
        self.max_pending = max_pending
        self.counters: Counter[str] = Counter()
        self.last_heard: float | None = None
        self._seq = 0
        self._out: deque[bytes] = deque()
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._seen: OrderedDict[tuple[int, int], None] = OrderedDict()
        self._window = dedupe_window
        self._outcomes: list[Outcome] = []

    def send(self, message: LinkMessage, now: float) -> int:
        seq = self._next_seq()
        frame = encode(message, seq)
        self._out.append(frame)
        if message.ACKED:
            if len(self._pending) >= self.max_pending:
                _, dropped = self._pending.popitem(last=False)
                self.counters["pending_dropped"] += 1
                self._outcomes.append(Outcome(dropped.message, None))
            self._pending[seq] = _Pending(message, frame, 1, now + self.retransmit_s)
        return seq

    def receive(self, data: bytes, now: float) -> list[LinkMessage]:
        delivered = []
        for frame in self.parser.feed(data):
            self.last_heard = now
            message = frame.message
            if isinstance(message, Ack):
                pending = self._pending.pop(message.acked_seq, None)
                if pending is not None:
                    self._outcomes.append(Outcome(pending.message, message.status))
                continue
            if message.ACKED:
                self._out.append(encode(Ack(acked_seq=frame.seq), self._next_seq()))
                if isinstance(message, Hello):
                    self._seen.clear()
                key = (message.TYPE, frame.seq)
                if key in self._seen:
                    self.counters["duplicates"] += 1
                    continue
                self._seen[key] = None
                if len(self._seen) > self._window:
                    self._seen.popitem(last=False)
            delivered.append(message)
        return delivered

    def outgoing(self, now: float) -> bytes:
        """Bytes to write now: new frames, acknowledgements and retransmissions."""
        for seq, pending in list(self._pending.items()):
            if now < pending.due:
                continue
            if pending.attempts >= self.max_attempts:
                del self._pending[seq]
                self.counters["gave_up"] += 1
                self._outcomes.append(Outcome(pending.message, None))
                continue
            pending.attempts += 1
            pending.due = now + self.retransmit_s
            self.counters["retransmits"] += 1
            self._out.append(pending.frame)
        data = b"".join(self._out)
        self._out.clear()
        return data

    def next_due(self) -> float | None:
        """When `outgoing` next has a retransmission to make, if anything is pending."""
        return min((p.due for p in self._pending.values()), default=None)

    def outcomes(self) -> list[Outcome]:
        taken, self._outcomes = self._outcomes, []
        return taken

    def _next_seq(self) -> int:
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFFFF
        return seq
