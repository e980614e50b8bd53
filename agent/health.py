"""The agent's health (pure: the caller passes the time in): which loops still complete their
rounds, how often supervised tasks were restarted, and the Prometheus text a scrape gets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass


class Heartbeats:
    """Each watched loop beats when it completes a round; one silent for longer than
    `stall_after_s` is wedged (blocked, or failing before the end of every round). A loop
    that never beat counts from `started`."""

    def __init__(self, names: Iterable[str], stall_after_s: float, started: float) -> None:
        self.stall_after_s = stall_after_s
        self._last = dict.fromkeys(names, started)

    def beat(self, name: str, now: float) -> None:
        self._last[name] = now

    def stalled(self, now: float) -> list[str]:
        return sorted(n for n, t in self._last.items() if now - t > self.stall_after_s)

    def ages(self, now: float) -> dict[str, float]:
        return {name: max(0.0, now - t) for name, t in sorted(self._last.items())}


class Restarts:
    """Counts how often each supervised task was started again after it ended or crashed."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def counted(
        self, name: str, run: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        """`run`, counting every call after the first as a restart of `name`."""
        self.counts[name] = -1

        def counting() -> Awaitable[None]:
            self.counts[name] += 1
            return run()

        return counting


# A camera that delivered no frame this long is down.
CAMERA_SILENT_S = 5.0


class AgentHealth:
    """What the agent keeps for its health: loop heartbeats, task restarts, when it started
    and when the camera last delivered."""

    def __init__(self, loops: Iterable[str], stall_after_s: float, started: float) -> None:
        self.started = started
        self.beats = Heartbeats(loops, stall_after_s, started)
        self.restarts = Restarts()
        self._frames = 0
        self._frames_at = started

    def uptime(self, now: float) -> float:
        return max(0.0, now - self.started)

    def camera_flowing(self, frames: int, now: float) -> bool:
        """Whether the frame count moved within CAMERA_SILENT_S (sampled at each call)."""
        if frames != self._frames:
            self._frames, self._frames_at = frames, now
        return frames > 0 and now - self._frames_at <= CAMERA_SILENT_S


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    uptime_s: float
    # Link -> up; only the links this unit has configured (mqtt always).
    links: dict[str, bool]
    outbox_rows: int
    outbox_bytes: int
    outbox_dropped: int
    mqtt_connects: int
    commands_rejected: int
    stream_live: bool
    uplink_level: str | None
    restarts: dict[str, int]
    loop_ages_s: dict[str, float]
    stalled: list[str]
    evidence_segments_waiting: int | None = None
    evidence_bytes_waiting: int | None = None
    camera_frames: int | None = None
    # Publishes the broker refused as not authorized (rows kept and sent again).
    outbox_not_authorized: int = 0
    # The client certificate and its renewal (agent/renewal.py), when the unit renews.
    cert_expires_in_s: float | None = None
    renewal_outcomes: dict[str, int] | None = None
    renewal_last: str | None = None

    @property
    def healthy(self) -> bool:
        return not self.stalled


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def metric(
        self,
        name: str,
        kind: str,
        help_text: str,
        samples: dict[str, float] | float,
        label: str = "",
    ) -> None:
        self.lines.append(f"# HELP rtcc_agent_{name} {help_text}")
        self.lines.append(f"# TYPE rtcc_agent_{name} {kind}")
        if isinstance(samples, dict):
            for key, value in samples.items():
                self.lines.append(f'rtcc_agent_{name}{{{label}="{_label(key)}"}} {value:g}')
        else:
            self.lines.append(f"rtcc_agent_{name} {samples:g}")


def render_metrics(s: HealthSnapshot) -> str:
    """Prometheus text exposition format 0.0.4."""
    t = _Text()
    t.metric("healthy", "gauge", "1 while every watched loop completes its rounds.", s.healthy)
    t.metric("uptime_seconds", "gauge", "Seconds since the agent started.", s.uptime_s)
    t.metric(
        "link_up",
        "gauge",
        "1 while the link is up (mqtt, bodycam, camera).",
        {k: float(v) for k, v in s.links.items()},
        "link",
    )
    t.metric("outbox_rows", "gauge", "Messages waiting for the broker.", s.outbox_rows)
    t.metric("outbox_bytes", "gauge", "Bytes waiting for the broker.", s.outbox_bytes)
    t.metric(
        "outbox_dropped_total", "counter", "Oldest messages dropped when full.", s.outbox_dropped
    )
    t.metric(
        "outbox_not_authorized_total",
        "counter",
        "Publishes the broker refused as not authorized; rows kept and sent again.",
        s.outbox_not_authorized,
    )
    t.metric("mqtt_connects_total", "counter", "Broker connections made.", s.mqtt_connects)
    t.metric("commands_rejected_total", "counter", "Commands refused.", s.commands_rejected)
    t.metric("stream_live", "gauge", "1 while live video reaches the relay.", s.stream_live)
    if s.uplink_level is not None:
        t.lines.append("# HELP rtcc_agent_uplink_level The live stream's step (1 = current).")
        t.lines.append("# TYPE rtcc_agent_uplink_level gauge")
        t.lines.append(f'rtcc_agent_uplink_level{{level="{_label(s.uplink_level)}"}} 1')
    t.metric(
        "task_restarts_total",
        "counter",
        "Restarts of supervised tasks.",
        {k: float(v) for k, v in s.restarts.items()},
        "task",
    )
    t.metric(
        "loop_age_seconds",
        "gauge",
        "Seconds since the loop last completed a round.",
        s.loop_ages_s,
        "loop",
    )
    if s.evidence_segments_waiting is not None:
        t.metric(
            "evidence_backlog_segments",
            "gauge",
            "Evidence segments not yet uploaded.",
            s.evidence_segments_waiting,
        )
    if s.evidence_bytes_waiting is not None:
        t.metric(
            "evidence_backlog_bytes",
            "gauge",
            "Evidence bytes not yet uploaded.",
            s.evidence_bytes_waiting,
        )
    if s.camera_frames is not None:
        t.metric("camera_frames_total", "counter", "Frames the camera delivered.", s.camera_frames)
    _renewal(t, s)
    return "\n".join(t.lines) + "\n"


def _renewal(t: _Text, s: HealthSnapshot) -> None:
    if s.cert_expires_in_s is not None:
        t.metric(
            "certificate_expiry_seconds",
            "gauge",
            "Seconds until the client certificate expires (negative: expired).",
            s.cert_expires_in_s,
        )
    if s.renewal_outcomes is not None:
        t.metric(
            "certificate_renewals_total",
            "counter",
            "Certificate renewal attempts, by outcome (ok, refused, failed).",
            {k: float(v) for k, v in s.renewal_outcomes.items()},
            "outcome",
        )
    if s.renewal_last is not None:
        name = "rtcc_agent_certificate_renewal_last"
        t.lines.append(f"# HELP {name} The last renewal attempt's outcome (1 = it).")
        t.lines.append(f"# TYPE {name} gauge")
        t.lines.append(f'{name}{{outcome="{_label(s.renewal_last)}"}} 1')
