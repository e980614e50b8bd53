"""What the uplink to the relay carries, judged from the relay's RTCP (pure: the caller
passes the time in).

Inputs, per session:
- receiver reports for our SSRC, about one a second: the fraction lost since the previous
  report, interarrival jitter, and the round trip from LSR/DLSR (`RoundTrip`: against the
  time each of our sender reports left, so a report that answers an older one, as happens
  once a queue delays them, still counts; aiortc's own figure skips those, and is blind to
  exactly the queueing that matters);
- REMB: our sessions negotiate `goog-remb` and `abs-send-time`, and the relay's aiortc
  receiver runs its delay-based estimator and sends REMB every ~0.5 s after a 3 s warm-up.
  On overuse it falls to 0.85x the rate received; otherwise it climbs, capped near 1.5x that
  rate, and after a congestion it may hold a low value for many seconds. So REMB says how
  much less to send when it falls, never how much more the link would carry;
- what we sent: encoded frame sizes over a short window.

All rates are media payload rates, as REMB and the encoder's bitrate are; packet overhead
and status traffic live in the ladder's headroom. The estimate is what demonstrably gets
through: while loss is high, the sent rate less the lost fraction; otherwise REMB while it
is fresh, else the sent rate (less any loss).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

Level = Literal["normal", "reduced", "substream", "keyframes"]
LEVELS: tuple[Level, ...] = ("normal", "reduced", "substream", "keyframes")

LOSSY = 0.05
# A REMB this much below the previous one is the receiver seeing overuse now.
REMB_FALL = 0.95
SENT_WINDOW_S = 2.0
MAX_SENT_ENTRIES = 1024
# The path's own round trip is the least seen over this window, so a longer path (a
# handover, a satellite hop) becomes the new floor within it instead of reading as a queue.
RTT_FLOOR_WINDOW_S = 10.0
# The round trip judged is the median of the latest reports: jitter moves single ones.
RTT_MEDIAN_OF = 3
MAX_RTT_ENTRIES = 64


@dataclass(frozen=True, slots=True)
class UplinkSample:
    """The estimator's view at one moment; input to the degrade ladder."""

    sent_bps: int
    loss: float | None = None
    last_loss: float | None = None
    rtt_s: float | None = None
    queueing_s: float | None = None
    jitter_s: float | None = None
    remb_bps: int | None = None
    remb_falling: bool = False
    estimate_bps: int | None = None


@dataclass(frozen=True, slots=True)
class UplinkReport:
    """The publisher's uplink as the rest of the agent sees it (read-only). Rates in media
    bits per second; `loss` a smoothed fraction (0..1); times in seconds; `target_bps` the
    encoder's bitrate on the reduced step."""

    level: Level = "normal"
    estimate_bps: int | None = None
    sent_bps: int | None = None
    target_bps: int | None = None
    loss: float | None = None
    rtt_s: float | None = None
    jitter_s: float | None = None
    remb_bps: int | None = None

    @property
    def degraded(self) -> bool:
        return self.level != "normal"


class RoundTrip:
    """RFC 3550 round trip: a receiver report names our sender report (LSR, the middle 32
    bits of its NTP time) and how long the relay held it (DLSR, 1/65536 s)."""

    def __init__(self, remembered: int = 16) -> None:
        self._sent: dict[int, float] = {}
        self._remembered = remembered

    def sender_report(self, lsr: int, now: float) -> None:
        self._sent[lsr] = now
        while len(self._sent) > self._remembered:
            del self._sent[next(iter(self._sent))]

    def rtt(self, lsr: int, dlsr: int, now: float) -> float | None:
        sent = self._sent.get(lsr)
        if sent is None or lsr == 0:
            return None
        rtt = now - sent - dlsr / 65536
        return rtt if rtt >= 0 else None


class UplinkEstimator:
    def __init__(
        self,
        window_s: float = SENT_WINDOW_S,
        loss_weight: float = 0.5,
        remb_fresh_s: float = 2.0,
    ) -> None:
        self._window_s = window_s
        self._loss_weight = loss_weight
        self._remb_fresh_s = remb_fresh_s
        self._sent: deque[tuple[float, int]] = deque(maxlen=MAX_SENT_ENTRIES)
        self._sent_bytes = 0
        self._first_sent: float | None = None
        self._loss: float | None = None
        self._last_loss: float | None = None
        self._rtts: deque[tuple[float, float]] = deque(maxlen=MAX_RTT_ENTRIES)
        self._jitter: float | None = None
        self._remb: int | None = None
        self._remb_at = -math.inf
        self._remb_fell_at = -math.inf

    def sent(self, now: float, nbytes: int) -> None:
        if self._first_sent is None:
            self._first_sent = now
        if len(self._sent) == self._sent.maxlen:
            self._sent_bytes -= self._sent[0][1]
        self._sent.append((now, nbytes))
        self._sent_bytes += nbytes

    def report(
        self, now: float, fraction_lost: float, jitter_s: float, rtt_s: float | None
    ) -> None:
        """One receiver report for our stream."""
        lost = min(1.0, max(0.0, fraction_lost))
        self._last_loss = lost
        w = self._loss_weight
        self._loss = lost if self._loss is None else w * lost + (1 - w) * self._loss
        self._jitter = jitter_s
        if rtt_s is not None and rtt_s >= 0:
            self._rtts.append((now, rtt_s))

    def remb(self, now: float, bps: int) -> None:
        if self._remb is not None and bps < REMB_FALL * self._remb:
            self._remb_fell_at = now
        self._remb, self._remb_at = bps, now

    def sent_bps(self, now: float) -> int:
        while self._sent and self._sent[0][0] <= now - self._window_s:
            self._sent_bytes -= self._sent.popleft()[1]
        if self._first_sent is None:
            return 0
        # A session younger than the window has sent over a shorter span.
        span = min(self._window_s, max(0.5, now - self._first_sent))
        return round(8 * self._sent_bytes / span)

    def sample(self, now: float) -> UplinkSample:
        sent = self.sent_bps(now)
        remb = self._remb if now - self._remb_at <= self._remb_fresh_s else None
        delivered = None if self._last_loss is None else round(sent * (1 - self._last_loss))
        estimate: int | None
        if self._last_loss is not None and self._last_loss >= LOSSY:
            # Saturated: what arrives is what the link carries (REMB is then a target of
            # 0.85x that, not a measure).
            estimate = delivered
        elif remb is not None:
            estimate = remb
        else:
            estimate = delivered
        rtt, queueing = self._round_trip(now)
        return UplinkSample(
            sent_bps=sent,
            loss=self._loss,
            last_loss=self._last_loss,
            rtt_s=rtt,
            queueing_s=queueing,
            jitter_s=self._jitter,
            remb_bps=remb,
            remb_falling=now - self._remb_fell_at <= self._remb_fresh_s,
            estimate_bps=estimate,
        )

    def _round_trip(self, now: float) -> tuple[float | None, float | None]:
        """The smoothed round trip, and how far it lies above the path's floor."""
        # Round trips older than the window say nothing about the path now (reports stopped).
        while self._rtts and self._rtts[0][0] < now - RTT_FLOOR_WINDOW_S:
            self._rtts.popleft()
        if not self._rtts:
            return None, None
        latest = sorted(rtt for _, rtt in list(self._rtts)[-RTT_MEDIAN_OF:])
        smoothed = latest[len(latest) // 2]
        return smoothed, smoothed - min(rtt for _, rtt in self._rtts)
