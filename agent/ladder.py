"""The degrade ladder: how much video the uplink gets, so that video never starves status
(pure: no clock of its own; fed one estimator sample per receiver report).

Steps, each only where the source offers it:
  normal    -> the camera as configured;
  reduced   -> a lower bitrate where the agent encodes (the simulator), adjusted within the
               step: down to a share of the estimate, up by a factor while the link is clean;
  substream -> the camera's own low-rate stream (RTSP cameras usually offer one);
  keyframes -> keyframes only, every other frame dropped before the packetizer.

Down: congestion (loss in the latest report, queueing delay over the session's floor RTT,
or a REMB that just fell well below what we send) on consecutive reports, once the previous
change had time to show.
The ceiling is what the link has shown it carries, nothing else: it falls at a step down for
loss to what arrived (sent less the lost share; the estimate if lower), and rises only by
the least sent over a clean hold. Queueing delay steps down too, but sets no ceiling: on a
jittery cellular path it reads as queueing with nothing lost, and a ceiling from it would
hold the video low for minutes. The relay's REMB is a brake, never evidence of room: it
lowers targets and caps probes, but a REMB alone neither raises nor lowers the ceiling,
since it can read well above a thin link (the relay times packets by their kernel arrival).
Up: a clean link for a hold time. Within the reduced step the bitrate climbs to a share
(`headroom`) of the ceiling and rests there, leaving the rest to status and packet overhead.
Once what is sent reaches that share, a step up is a probe to `probe_past` times the
ceiling, never past a fresh REMB (overshooting a thin link by a third loses enough packets
to stall the status connection), and waits for the probe hold, as does a step to a higher
level. Once a ceiling is known no raise goes past that probe target, whatever the encoder
sends: a target the encoder does not use yet is used at its next keyframe or busy scene,
all at once. A probe soon undone doubles the probe hold (so a link that carries only the
lower rate is probed less and less often); a step up that holds for `stable_s` resets it.
An encoder with little to encode stays below its target and so never shows the link carries
more: a ceiling no congestion has confirmed for `stale_holds` times the longest probe hold
is forgotten (the vehicle has moved on, as on a new network), and full quality returns.
Clean means a low smoothed loss, so a link just out of a loss burst is not probed at once;
a link between the down and up thresholds stays put.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from agent.uplink import LEVELS, Level, UplinkSample

# What is sent counts as having reached a bitrate within this share of it (encoders wander).
REACHED = 0.9
MAX_CLEAN_REPORTS = 64


@dataclass(frozen=True, slots=True)
class LadderConfig:
    loss_bad: float = 0.08
    loss_ok: float = 0.02
    # Above the session's floor RTT. Jitter alone moves it too (a 400 +- 100 ms link each
    # way spans 400 ms): only more than that is a queue building up.
    queueing_bad_s: float = 0.6
    queueing_ok_s: float = 0.25
    remb_overuse: float = 0.75
    bad_samples: int = 2
    settle_s: float = 2.5
    up_hold_s: float = 4.0
    up_hold_max_s: float = 30.0
    stable_s: float = 30.0
    headroom: float = 0.7
    increase: float = 1.3
    probe_past: float = 1.15
    decrease: float = 0.75
    # A ceiling no congestion has confirmed for this many of the longest probe holds is
    # forgotten (a ladder tuned to probe sooner forgets sooner too).
    stale_holds: int = 4

    def __post_init__(self) -> None:
        if not 0 <= self.loss_ok < self.loss_bad <= 1:
            raise ValueError("need 0 <= loss_ok < loss_bad <= 1")
        if not 0 <= self.queueing_ok_s < self.queueing_bad_s:
            raise ValueError("need 0 <= queueing_ok_s < queueing_bad_s")
        if not (0 < self.headroom <= 1 and 0 < self.decrease < 1 < self.increase):
            raise ValueError("need 0 < headroom <= 1 and 0 < decrease < 1 < increase")
        if self.probe_past <= 1:
            raise ValueError("need probe_past > 1")
        if not 0 < self.up_hold_s <= self.up_hold_max_s or self.bad_samples < 1:
            raise ValueError("need 0 < up_hold_s <= up_hold_max_s and bad_samples >= 1")
        if self.stale_holds < 1:
            raise ValueError("need stale_holds >= 1")


@dataclass(frozen=True, slots=True)
class Setting:
    """What the publisher sends. `target_bps` is the encoder's bitrate on the reduced step,
    and stays at its floor on the steps below it when the source has no substream."""

    level: Level = "normal"
    target_bps: int | None = None


class DegradeLadder:
    def __init__(
        self,
        levels: Sequence[Level],
        nominal_bps: int | None = None,
        min_bps: int = 64_000,
        config: LadderConfig = LadderConfig(),
    ) -> None:
        wanted = set(levels) | {"normal", "keyframes"}
        if "reduced" in wanted and (nominal_bps is None or nominal_bps <= min_bps):
            wanted.discard("reduced")
        self.levels: tuple[Level, ...] = tuple(level for level in LEVELS if level in wanted)
        self.nominal_bps = nominal_bps
        self.min_bps = min_bps
        self.config = config
        self.setting = Setting()
        self.hold_s = config.up_hold_s
        self.reason: str | None = None
        self.ceiling_bps: int | None = None
        self._changed_at: float | None = None
        self._went_up_at: float | None = None
        self._bad = 0
        self._good_since: float | None = None
        self._congested_at: float | None = None
        self._clean_sent: deque[tuple[float, int]] = deque(maxlen=MAX_CLEAN_REPORTS)

    def congestion(self, sample: UplinkSample) -> str | None:
        """Judged on the latest report alone; consecutive ones make it stick."""
        c = self.config
        if sample.last_loss is not None and sample.last_loss >= c.loss_bad:
            return "loss"
        if sample.queueing_s is not None and sample.queueing_s >= c.queueing_bad_s:
            return "queueing"
        if self._remb_overuse(sample):
            return "remb"
        return None

    def _remb_overuse(self, sample: UplinkSample) -> bool:
        """REMB just fell well below what we send. A low REMB that is merely held (aiortc
        keeps one for a while after congestion) is no news."""
        return (
            sample.remb_bps is not None
            and sample.remb_falling
            and sample.remb_bps < self.config.remb_overuse * sample.sent_bps
        )

    def clean(self, sample: UplinkSample) -> bool:
        c = self.config
        return (
            sample.loss is not None
            and sample.loss <= c.loss_ok
            and (sample.queueing_s is None or sample.queueing_s <= c.queueing_ok_s)
            and not self._remb_overuse(sample)
        )

    def update(self, now: float, sample: UplinkSample) -> Setting | None:
        """The new setting, or None if it stays."""
        if self._changed_at is not None and now - self._changed_at < self.config.settle_s:
            return None  # what the link does now still shows the previous setting
        congested = self.congestion(sample)
        self._bad = self._bad + 1 if congested else 0
        if congested is not None:
            self._congested_at = now
        if self.clean(sample):
            self._clean_report(now, sample.sent_bps)
        else:
            self._good_since = None
        stale = self.config.stale_holds * self.config.up_hold_max_s
        if self._congested_at is not None and now - self._congested_at >= stale:
            self.ceiling_bps = None  # not confirmed for long: the link it measured is gone
        if (
            self._went_up_at is not None
            and congested is None
            and now - self._went_up_at >= self.config.stable_s
        ):
            self._went_up_at = None
            self.hold_s = self.config.up_hold_s
        if congested is not None and self._bad >= self.config.bad_samples:
            down = self._change(now, self._down(sample), congested, up=False)
            if down is not None and congested == "loss":
                # Loss only ever lowers it: what a failed probe got through is no evidence
                # of more (a keyframe in the sent window makes it read high).
                arrived = self._arrived(sample)
                ceiling = self.ceiling_bps
                self.ceiling_bps = arrived if ceiling is None else min(ceiling, arrived)
            return down
        step = self._up(sample)
        if step is None or self._good_since is None:
            return None
        setting, probe = step
        if now - self._good_since < (self.hold_s if probe else self.config.up_hold_s):
            return None
        return self._change(now, setting, "clean", up=probe)

    @staticmethod
    def _arrived(sample: UplinkSample) -> int:
        """What the link carried in a congested report: sent less the lost share, or the
        estimate (a REMB) where that is lower; a REMB above it is not evidence."""
        arrived = round(sample.sent_bps * (1 - (sample.last_loss or 0.0)))
        if sample.estimate_bps is not None:
            arrived = min(arrived, sample.estimate_bps)
        return arrived

    def _clean_report(self, now: float, sent_bps: int) -> None:
        if self._good_since is None:
            self._good_since = now
            self._clean_sent.clear()
        self._clean_sent.append((now, sent_bps))
        hold = self.config.up_hold_s
        while self._clean_sent[0][0] < now - hold:
            self._clean_sent.popleft()
        carried = min(sent for _, sent in self._clean_sent)
        if now - self._good_since >= hold and self.ceiling_bps is not None:
            # The least sent over a clean hold: what the link carries, not a keyframe's peak.
            self.ceiling_bps = max(self.ceiling_bps, carried)

    def _change(self, now: float, new: Setting | None, reason: str, up: bool) -> Setting | None:
        if new is None or new == self.setting:
            return None
        if up:
            self._went_up_at = now
        elif self._went_up_at is not None:
            # The link did not carry the probe: wait longer before the next one.
            self._went_up_at = None
            self.hold_s = min(self.config.up_hold_max_s, 2 * self.hold_s)
        self.setting, self.reason = new, reason
        self._changed_at, self._bad, self._good_since = now, 0, None
        return new

    def forget(self) -> None:
        """A new network: its ceiling is unknown, and probing starts afresh."""
        self.ceiling_bps = None
        self.hold_s = self.config.up_hold_s
        self._went_up_at = None
        self._congested_at = None

    def _below(self, level: Level) -> Level | None:
        index = self.levels.index(level)
        return self.levels[index + 1] if index + 1 < len(self.levels) else None

    def _above(self, level: Level) -> Level | None:
        index = self.levels.index(level)
        return self.levels[index - 1] if index > 0 else None

    def _fit(self, sample: UplinkSample, at_most: int) -> int:
        """A bitrate that leaves the rest of the estimate to status and overhead."""
        fit = at_most
        if sample.estimate_bps is not None:
            fit = min(fit, round(self.config.headroom * sample.estimate_bps))
        return max(self.min_bps, fit)

    def _floor_target(self) -> int | None:
        return self.min_bps if "reduced" in self.levels else None

    def _down(self, sample: UplinkSample) -> Setting | None:
        level, target = self.setting.level, self.setting.target_bps
        decrease = self.config.decrease
        if level == "reduced" and target is not None and target > self.min_bps:
            return Setting("reduced", self._fit(sample, round(decrease * target)))
        below = self._below(level)
        if below is None:
            return None
        if below == "reduced":
            assert self.nominal_bps is not None
            return Setting("reduced", self._fit(sample, round(decrease * self.nominal_bps)))
        return Setting(below, self._floor_target())

    def _up(self, sample: UplinkSample) -> tuple[Setting, bool] | None:
        """The next step up, and whether it is a probe."""
        level, target = self.setting.level, self.setting.target_bps
        if level == "reduced" and target is not None and self.nominal_bps is not None:
            step = self._raise(sample, target)
            if step is None:
                return None
            raised, probe = step
            if raised >= self.nominal_bps:
                return Setting("normal"), probe
            return Setting("reduced", raised), probe
        above = self._above(level)
        if above is None:
            return None
        if above == "reduced":
            # Coming back to the main stream: start near what the link carried below.
            assert self.nominal_bps is not None
            start = min(round(self.config.increase * sample.sent_bps), self.nominal_bps)
            probe_at = self._probe_at(sample, start)
            if probe_at is not None:
                start = min(start, probe_at)
            return Setting("reduced", max(self.min_bps, start)), True
        if above == "normal":
            return Setting("normal"), True
        return Setting(above, self._floor_target()), True

    def _probe_at(self, sample: UplinkSample, target: int) -> int | None:
        """The highest target allowed while the ceiling is known: `probe_past` times it, and
        no further than a fresh REMB above the target (one at or below it is a value aiortc
        holds after congestion)."""
        if self.ceiling_bps is None:
            return None
        probe_at = round(self.config.probe_past * self.ceiling_bps)
        if sample.remb_bps is not None and sample.remb_bps > target:
            probe_at = min(probe_at, sample.remb_bps)
        return probe_at

    def _raise(self, sample: UplinkSample, target: int) -> tuple[int, bool] | None:
        """A higher target within the reduced step, and whether it is a probe."""
        c, ceiling = self.config, self.ceiling_bps
        raised = round(c.increase * target)
        probe_at = self._probe_at(sample, target)
        if ceiling is None or probe_at is None:
            return raised, False
        cap = round(c.headroom * ceiling)
        if target < cap:
            return min(raised, cap), False
        if target >= probe_at:
            # Even if the encoder sends less than it has: it would use a higher target at
            # its next keyframe, all at once. Only a clean hold raises the ceiling.
            return None
        if sample.sent_bps < REACHED * cap:
            # Unused by the encoder yet: climb, but past the ceiling only as a probe would.
            raised = min(raised, probe_at)
            return raised, raised > ceiling
        return probe_at, True
