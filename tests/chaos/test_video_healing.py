"""Video that heals itself, end to end: the center (`rtcc central`) and a re-joining viewer
in the core namespace, the unit (`rtcc agent`, simulated body-cam) in the vehicle namespace,
faults on the link or crashes of the processes between them. Nobody clicks anything: each
scenario checks that video decodes again at the viewer within its limit, and that every
simulated event reached the broker exactly once.

The sleeps below schedule faults (how long a cut lasts, when a process is killed); every
wait for a state is a wait on that state."""

from __future__ import annotations

import os
import signal
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from protocol import Topic, decode
from tests.chaos.harness import (
    KEEPALIVE_S,
    UNIT,
    Site,
    ViewerRun,
    collect,
    event_filter,
    events_exactly_once,
    outbox_rows,
)
from tests.helpers import wait_until
from tests.lab.lab import FaultLab
from tests.lab.model import Faults
from tests.lab.report import ChaosReport
from tests.lab.watch import Arrival, Feed

pytestmark = pytest.mark.chaos

BACK_LIMIT_S = 5.0
HANDOVER_LIMIT_S = 3.0
SETTLE_S = 4.0  # video flowing steadily before a fault


@pytest.fixture
def site(fault_lab: FaultLab, tmp_path: Path) -> Iterator[Site]:
    site = Site(fault_lab, tmp_path / "site")
    site.start_center()
    site.start_agent()
    yield site


def check_events(
    site: Site, watch: Feed, report: ChaosReport, scenario: str, epochs: int = 1
) -> None:
    outbox_drains(site)
    arrivals = collect(watch)
    counts = [events_exactly_once(group) for group in split_by_process(arrivals, epochs)]
    events = sum(c[0] for c in counts)
    lost = sum(c[1] for c in counts)
    duplicated = sum(c[2] for c in counts)
    report.record(scenario, "events lost", lost, "", limit=0)
    report.record(scenario, "events duplicated", duplicated, "", limit=0)
    assert events > 0 and lost == 0 and duplicated == 0, (events, lost, duplicated)


def record_ladder(site: Site, report: ChaosReport, scenario: str) -> None:
    """What the unit's degrade ladder did, and why: the cause when a scenario misses."""
    steps = site.log_events("agent", "uplink_level")
    reasons = sorted({str(step.get("reason")) for step in steps})
    lowest = max((LEVEL_RANK[str(s["step"])] for s in steps), default=0)
    report.record(scenario, f"ladder steps ({', '.join(reasons) or 'none'})", len(steps), "")
    report.record(scenario, "ladder lowest level (0 normal .. 3 keyframes)", lowest, "")


LEVEL_RANK = {"normal": 0, "reduced": 1, "substream": 2, "keyframes": 3}


def split_by_process(arrivals: list[Arrival], epochs: int) -> list[list[Arrival]]:
    """The simulator numbers events from 0 in each agent process: one group per process,
    told apart by a restart of the numbering."""
    if epochs == 1:
        return [arrivals]
    ordered = sorted(arrivals, key=lambda a: decode(a.topic, a.payload).envelope.ts)
    groups: list[list[Arrival]] = [[]]
    last_n = -1
    for arrival in ordered:
        n = decode(arrival.topic, arrival.payload).envelope.body.data.get("n")
        if isinstance(n, int) and n < last_n:
            groups.append([])
        last_n = n if isinstance(n, int) else last_n
        groups[-1].append(arrival)
    return groups


def record_back(report: ChaosReport, scenario: str, back: float, limit: float) -> None:
    report.record(scenario, "video decoding again after", round(back, 2), "s", limit=limit)


def video_started(site: Site, seconds: float) -> tuple[dict[str, Any], Feed, ViewerRun]:
    """Video started at the unit as the CAD starts it, and a viewer on it for `seconds`;
    the unit's events watched at the broker from before the viewer joins."""
    grant = site.remote_start()
    events = site.broker_watch(event_filter())
    return grant, events, ViewerRun.start(site, grant, seconds=seconds)


def presence_of_the_unit(site: Site) -> Feed:
    return site.broker_watch(str(Topic.presence(UNIT)))


def online(arrival: Arrival) -> bool:
    """Whether a presence report says the unit is online."""
    return bool(decode(arrival.topic, arrival.payload).envelope.body.online)


def went_offline(presence: Feed) -> list[Arrival]:
    """The reports of the unit going offline, of all the presence feed has received."""
    return [a for a in collect(presence) if not online(a)]


def outbox_drains(site: Site) -> None:
    wait_until(lambda: outbox_rows(site) == 0, 30, "the unit's outbox drains")


def test_relay_worker_kill(site: Site, chaos_report: ChaosReport) -> None:
    scenario = "relay worker kill -9"
    grant, events, viewer = video_started(site, seconds=20)
    time.sleep(SETTLE_S)
    os.kill(site.relay_worker_pid(), signal.SIGKILL)
    killed = time.time()
    result = viewer.result()
    back = result.back_after(killed)
    record_back(chaos_report, scenario, back, BACK_LIMIT_S)
    assert back <= BACK_LIMIT_S
    streams = site.streams()
    assert [(s["stream_id"], s["live"]) for s in streams] == [(grant["stream_id"], True)]
    check_events(site, events, chaos_report, scenario)


def test_agent_kill_and_restart(site: Site, chaos_report: ChaosReport) -> None:
    scenario = "agent kill -9, restarted"
    grant, events, viewer = video_started(site, seconds=20)
    time.sleep(SETTLE_S)
    site.kill_agent()
    site.start_agent()
    restarted = time.time()
    result = viewer.result()
    back = result.back_after(restarted)
    record_back(chaos_report, scenario, back, BACK_LIMIT_S)
    assert back <= BACK_LIMIT_S
    assert [s["stream_id"] for s in site.streams()] == [grant["stream_id"]]
    check_events(site, events, chaos_report, scenario, epochs=2)


def test_center_restart(site: Site, chaos_report: ChaosReport) -> None:
    scenario = "center restart"
    grant = site.remote_start()
    viewer = ViewerRun.start(site, grant, seconds=30)
    time.sleep(SETTLE_S)
    stopped = time.time()
    site.stop_center()
    site.start_center()
    back_at = time.time()
    result = viewer.result()
    back = result.back_after(back_at, fault=stopped)
    record_back(chaos_report, scenario, back, BACK_LIMIT_S)
    assert back <= BACK_LIMIT_S
    assert [s["stream_id"] for s in site.streams()] == [grant["stream_id"]]
    outbox_drains(site)


def test_handover(site: Site, fault_lab: FaultLab, chaos_report: ChaosReport) -> None:
    scenario = "handover (new vehicle address)"
    _, events, viewer = video_started(site, seconds=20)
    presence = presence_of_the_unit(site)
    time.sleep(SETTLE_S)
    fault_lab.handover("10.200.0.3")
    moved = time.time()
    moved_mono = time.monotonic()
    born = presence.next(lambda a: a.at > moved_mono and online(a), 30)
    result = viewer.result()
    back = result.back_after(moved)
    record_back(chaos_report, scenario, back, HANDOVER_LIMIT_S)
    chaos_report.record(scenario, "MQTT back after", round(born.at - moved_mono, 2), "s")
    assert back <= HANDOVER_LIMIT_S
    check_events(site, events, chaos_report, scenario)


@pytest.mark.timeout(360)
def test_slow_link_400ms_jitter_for_two_minutes(
    site: Site, fault_lab: FaultLab, chaos_report: ChaosReport
) -> None:
    scenario = "delay 400 +- 100 ms, 2 min"
    _, events, viewer = video_started(site, seconds=135)
    presence = presence_of_the_unit(site)
    joined_before = len(site.log_events("center", "publisher_joined"))
    fault_lab.set_faults(Faults(delay_ms=400, jitter_ms=100))
    start = time.time()
    time.sleep(120)
    fault_lab.clear_faults()
    end = time.time()
    result = viewer.result()
    teardowns = len(site.log_events("center", "publisher_joined")) - joined_before
    offline = went_offline(presence)
    chaos_report.record(scenario, "publisher sessions rebuilt", teardowns, "", limit=0)
    chaos_report.record(scenario, "viewer sessions", result.joins, "", limit=1)
    chaos_report.record(scenario, "video fps during", round(result.fps(start + 5, end), 1), "fps")
    chaos_report.record(scenario, "longest freeze", round(result.longest_gap(start + 5, end), 2))
    record_ladder(site, chaos_report, scenario)
    assert teardowns == 0 and result.joins == 1 and not offline
    check_events(site, events, chaos_report, scenario)


@pytest.mark.timeout(240)
def test_thin_uplink_150_kbit(site: Site, fault_lab: FaultLab, chaos_report: ChaosReport) -> None:
    scenario = "uplink 150 kbit/s"
    _, events, viewer = video_started(site, seconds=75)
    presence = presence_of_the_unit(site)
    states = site.broker_watch(str(Topic.state(UNIT)))
    fault_lab.set_faults(Faults(rate_kbit=150), direction="uplink")
    start = time.time()
    clock_offset = time.time() - time.monotonic()
    time.sleep(60)
    fault_lab.clear_faults()
    end = time.time()
    result = viewer.result()
    delays = [
        a.at + clock_offset - decode(a.topic, a.payload).envelope.ts
        for a in collect(states)
        if not a.retained and start + 10 < a.at + clock_offset < end
    ]
    offline = went_offline(presence)
    p99 = statistics.quantiles(delays, n=100)[98] if len(delays) >= 2 else max(delays, default=0)
    fps = result.fps(start + 20, end)
    chaos_report.record(scenario, "state delay p99", round(p99, 2), "s", limit=3.0)
    chaos_report.record(scenario, "video fps (after 20 s)", round(fps, 1), "fps")
    chaos_report.record(scenario, "times offline", len(offline), "", limit=0)
    record_ladder(site, chaos_report, scenario)
    assert not offline and p99 <= 3.0 and fps >= 1.0, (len(offline), p99, fps)
    check_events(site, events, chaos_report, scenario)


@pytest.mark.timeout(360)
def test_link_cut_two_minutes(site: Site, fault_lab: FaultLab, chaos_report: ChaosReport) -> None:
    scenario = "link cut 120 s"
    _, events, viewer = video_started(site, seconds=140)
    presence = presence_of_the_unit(site)
    time.sleep(SETTLE_S)
    cut_at = time.time()
    cut = fault_lab.cut()
    offline = presence.next(lambda a: not online(a), 60)
    time.sleep(max(0.0, 120 - (time.monotonic() - cut.now)))
    fault_lab.restore()
    restored = time.time()
    result = viewer.result()
    back = result.back_after(restored, fault=cut_at)
    record_back(chaos_report, scenario, back, BACK_LIMIT_S)
    chaos_report.record(scenario, "offline seen after cut", round(offline.at - cut.now, 2), "s")
    assert back <= BACK_LIMIT_S
    assert offline.at - cut.now <= 1.5 * KEEPALIVE_S + 1.0
    check_events(site, events, chaos_report, scenario)
