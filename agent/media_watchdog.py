"""Is the media path to the relay alive? (pure: the caller passes the time in)

The relay's receiver sends an RTCP receiver report about every second for as long as it
holds our stream, so silence means the path or the relay is gone, long before ICE gives up
(a cut past ~30 s only ever shows as "closed", never "failed"). Reports that keep coming
while the highest sequence number they acknowledge stands still mean the path towards the
relay is gone while the one back still works (a one-way cut).

Both clocks start with the first frame sent: a relay that has received nothing reports
nothing, and a camera that delivers nothing is not a dead path.

`SessionEnds` turns how a session ended into what comes next: at once, or after backoff.
"""

from __future__ import annotations

from typing import Literal

Expiry = Literal["no_rtcp", "no_progress"]
Outcome = Literal["rebuild", "lasted", "failed"]
EXPIRIES: tuple[Expiry, ...] = ("no_rtcp", "no_progress")
REBUILD = "rebuild"


class MediaWatchdog:
    def __init__(self, timeout_s: float = 3.0) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.timeout_s = timeout_s
        self._first_sent: float | None = None
        self._last_rtcp: float | None = None
        # The first frame sent since the relay last acknowledged new packets.
        self._unacknowledged_since: float | None = None

    @property
    def heard(self) -> bool:
        """The relay has reported at least once on this session."""
        return self._last_rtcp is not None

    def sent(self, now: float) -> None:
        """A frame went to the packetizer."""
        if self._first_sent is None:
            self._first_sent = now
        if self._unacknowledged_since is None:
            self._unacknowledged_since = now

    def rtcp(self, now: float) -> None:
        """Any RTCP packet from the relay (report, REMB, NACK, PLI) arrived."""
        self._last_rtcp = now

    def progress(self, now: float) -> None:
        """A receiver report acknowledged packets beyond the previous report's."""
        self._last_rtcp = now
        self._unacknowledged_since = None

    def expired(self, now: float) -> Expiry | None:
        if self._first_sent is None:
            return None
        quiet_since = max(self._first_sent, self._last_rtcp or self._first_sent)
        if now - quiet_since > self.timeout_s:
            return "no_rtcp"
        # Before the first report the silence rule above decides alone.
        if (
            self._last_rtcp is not None
            and self._unacknowledged_since is not None
            and now - self._unacknowledged_since > self.timeout_s
        ):
            return "no_progress"
        return None


class SessionEnds:
    """A session ended for `reason` ("rebuild: why" when asked, an expiry, or the
    connection's final state): "rebuild" means a new session at once, "lasted" a short
    jittered pause, "failed" the growing backoff. A rebuild that was asked for is at once;
    so is the watchdog ending a session that the relay had answered, unless that keeps
    happening to sessions younger than `healthy_s` (a path that keeps dying is not
    hammered)."""

    def __init__(self, healthy_s: float = 10.0) -> None:
        self.healthy_s = healthy_s
        self._quick_deaths = 0

    def outcome(self, reason: str, lived_s: float | None, heard: bool) -> Outcome:
        """`lived_s`: how long it was connected (None: never)."""
        quick = lived_s is None or lived_s < self.healthy_s
        if reason.startswith(REBUILD):
            return "rebuild"
        if reason in EXPIRIES:
            if not heard:
                return "failed"  # the relay never answered: not a path that died
            self._quick_deaths = self._quick_deaths + 1 if quick else 0
            return "rebuild" if self._quick_deaths <= 1 else "failed"
        if not quick:
            self._quick_deaths = 0
        return "failed" if lived_s is None else "lasted"
