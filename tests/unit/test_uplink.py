"""The uplink estimate and the degrade ladder, fed synthetic report sequences."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytest

from agent.ladder import DegradeLadder, LadderConfig, Setting
from agent.state import uplink_status
from agent.uplink import Level, RoundTrip, UplinkEstimator, UplinkReport, UplinkSample
from protocol.models import UnitState

FPS = 30
NOMINAL = 280_000


def sample(
    sent: int = NOMINAL,
    loss: float | None = 0.0,
    queueing: float | None = 0.0,
    remb: int | None = None,
    estimate: int | None = None,
    remb_falling: bool = True,
) -> UplinkSample:
    return UplinkSample(
        sent_bps=sent,
        loss=loss,
        last_loss=loss,
        queueing_s=queueing,
        remb_bps=remb,
        remb_falling=remb_falling,
        estimate_bps=estimate if estimate is not None else sent,
    )


def feed(
    ladder: DegradeLadder, samples: Sequence[UplinkSample], start: float = 0.0
) -> list[tuple[float, Setting]]:
    changes = []
    for i, s in enumerate(samples):
        now = start + i
        new = ladder.update(now, s)
        if new is not None:
            changes.append((now, new))
    return changes


# ---- estimator ---------------------------------------------------------------------------


def test_sent_rate_over_the_window() -> None:
    est = UplinkEstimator(window_s=2.0)
    assert est.sent_bps(0.0) == 0
    for i in range(60):  # 2 s of 1000-byte frames at 30 fps: 240 kbit/s
        est.sent(i / FPS, 1000)
    assert est.sent_bps(59 / FPS) == pytest.approx(240_000, rel=0.05)
    assert est.sent_bps(10.0) == 0  # nothing sent lately


def test_loss_is_smoothed_and_rtt_growth_is_queueing() -> None:
    est = UplinkEstimator(loss_weight=0.5)
    est.report(1.0, 0.0, 0.001, 0.050)
    est.report(2.0, 0.4, 0.002, 0.090)
    s = est.sample(2.0)
    assert s.loss == pytest.approx(0.2) and s.last_loss == pytest.approx(0.4)
    assert s.rtt_s == pytest.approx(0.090) and s.queueing_s == pytest.approx(0.040)
    est.report(3.0, 0.0, 0.001, None)  # no RTT in this report: the last one stands
    assert est.sample(3.0).rtt_s == pytest.approx(0.090)


def test_a_longer_path_becomes_the_new_floor_and_one_late_report_is_not_a_queue() -> None:
    est = UplinkEstimator()
    for t in range(5):
        est.report(float(t), 0.0, 0.001, 0.002)
    est.report(5.0, 0.0, 0.001, 0.900)  # one report delayed by jitter
    assert est.sample(5.0).queueing_s == pytest.approx(0.0)
    for t in range(6, 10):  # the path now takes 0.8 s (a handover, a delay put in)
        est.report(float(t), 0.0, 0.001, 0.800)
    assert est.sample(9.0).queueing_s == pytest.approx(0.798)  # within the window: a queue
    for t in range(10, 21):
        est.report(float(t), 0.0, 0.001, 0.800 + 0.1 * (t % 2))
    late = est.sample(20.0)
    assert late.rtt_s == pytest.approx(0.8) and late.queueing_s == pytest.approx(0.0)


def test_round_trip_counts_reports_answering_older_sender_reports() -> None:
    """Once a queue delays our sender reports, the relay answers an older one than the last
    sent: that answer still measures the round trip, queue included."""
    rt = RoundTrip(remembered=4)
    rt.sender_report(0x1000, 10.0)
    rt.sender_report(0x2000, 11.0)
    # The relay got the first one 0.4 s late, held it 0.25 s, and its answer took 0.05 s.
    assert rt.rtt(0x1000, int(0.25 * 65536), 10.7) == pytest.approx(0.45, abs=1e-4)
    assert rt.rtt(0x3000, 0, 12.0) is None  # not one of ours
    assert rt.rtt(0, 0, 12.0) is None  # the relay had no sender report yet
    for i in range(4):
        rt.sender_report(0x4000 + i, 12.0 + i)
    assert rt.rtt(0x1000, 0, 20.0) is None  # forgotten: bounded memory


def test_estimate_is_remb_when_clean_and_what_arrives_when_lossy() -> None:
    est = UplinkEstimator(window_s=1.0, remb_fresh_s=2.0)
    for i in range(30):
        est.sent(i / FPS, 1250)  # 300 kbit/s
    est.report(1.0, 0.0, 0.0, 0.05)
    assert est.sample(1.0).estimate_bps == pytest.approx(300_000, rel=0.05)
    est.remb(1.0, 420_000)
    assert est.sample(1.0).estimate_bps == 420_000
    est.report(1.0, 0.5, 0.0, 0.05)  # half lost: what arrives is half of what was sent
    assert est.sample(1.0).estimate_bps == pytest.approx(150_000, rel=0.05)
    assert est.sample(5.0).remb_bps is None  # stale


# ---- ladder ------------------------------------------------------------------------------


def simulator_ladder(**overrides: Any) -> DegradeLadder:
    return DegradeLadder(
        ("normal", "reduced", "keyframes"), NOMINAL, 64_000, LadderConfig(**overrides)
    )


def test_a_clean_link_stays_normal() -> None:
    ladder = simulator_ladder()
    assert feed(ladder, [sample()] * 120) == []
    assert ladder.setting == Setting("normal")


def test_one_bad_report_is_not_congestion() -> None:
    ladder = simulator_ladder()
    assert feed(ladder, [sample(), sample(loss=0.5), sample(), sample()]) == []


def test_losses_between_the_thresholds_change_nothing() -> None:
    """Hysteresis: 5 % is not bad enough to step down, nor clean enough to step up."""
    ladder = simulator_ladder()
    assert feed(ladder, [sample(loss=0.05)] * 60) == []
    ladder.setting = Setting("reduced", 100_000)
    assert feed(ladder, [sample(sent=100_000, loss=0.05)] * 60) == []


def test_thin_link_steps_down_to_a_share_of_what_arrives() -> None:
    ladder = simulator_ladder()
    changes = feed(ladder, [sample(loss=0.46, estimate=150_000)] * 3)
    assert [c.level for _, c in changes] == ["reduced"]
    target = changes[0][1].target_bps
    assert target is not None and target <= 0.7 * 150_000
    assert ladder.reason == "loss"


def test_still_congested_goes_lower_then_to_keyframes_only() -> None:
    ladder = simulator_ladder(settle_s=2.0)
    changes = feed(ladder, [sample(loss=0.3, estimate=40_000)] * 40)
    levels = [c.level for _, c in changes]
    assert levels[0] == "reduced" and levels[-1] == "keyframes"
    targets = [c.target_bps or 0 for _, c in changes if c.level == "reduced"]
    assert targets == sorted(targets, reverse=True) and targets[-1] == 64_000
    times = [t for t, _ in changes]
    assert all(b - a >= 2.0 for a, b in itertools.pairwise(times))  # settles


def test_queueing_delay_and_low_remb_are_congestion_too() -> None:
    assert simulator_ladder().congestion(sample(queueing=0.7)) == "queueing"
    # What jitter alone adds to the round trip (400 +- 100 ms each way) is not a queue.
    assert simulator_ladder().congestion(sample(queueing=0.4)) is None
    assert simulator_ladder().congestion(sample(remb=150_000)) == "remb"
    assert simulator_ladder().congestion(sample(remb=300_000, queueing=0.05)) is None
    # A low REMB held after congestion, not falling any more, is no news.
    held = sample(sent=200_000, remb=100_000, remb_falling=False)
    assert simulator_ladder().congestion(held) is None and simulator_ladder().clean(held)


def test_remb_that_falls_is_noticed_and_one_that_holds_is_not() -> None:
    est = UplinkEstimator(remb_fresh_s=2.0)
    est.remb(1.0, 300_000)
    est.remb(1.5, 310_000)
    assert not est.sample(1.5).remb_falling
    est.remb(2.0, 250_000)
    assert est.sample(2.0).remb_falling
    est.remb(4.5, 250_000)
    assert not est.sample(4.5).remb_falling


def test_recovery_raises_the_bitrate_then_returns_to_normal() -> None:
    ladder = simulator_ladder(up_hold_s=4.0, settle_s=2.0)
    ladder.setting = Setting("reduced", 90_000)
    changes = feed(ladder, [sample(sent=90_000, remb=200_000)] * 60)
    levels = [c.level for _, c in changes]
    assert levels[-1] == "normal" and set(levels[:-1]) == {"reduced"}
    targets = [c.target_bps or 0 for _, c in changes[:-1]]
    assert targets == sorted(targets) and all(0 < t < NOMINAL for t in targets)
    assert changes[1][0] - changes[0][0] >= 4.0  # held clean before each step


def test_at_the_ceilings_share_a_step_up_probes_past_the_ceiling() -> None:
    ladder = simulator_ladder(up_hold_s=4.0)
    feed(ladder, [sample(loss=0.4, estimate=150_000)] * 3)
    assert ladder.ceiling_bps == 150_000
    assert ladder.setting == Setting("reduced", 105_000)  # 0.7 of the ceiling
    up = feed(ladder, [sample(sent=105_000)] * 10, start=10)
    assert [c for _, c in up] == [Setting("reduced", 172_500)]  # 1.15 x the ceiling
    # It held: the ceiling is what got through, and each probe goes 15 % past it.
    feed(ladder, [sample(sent=172_500)] * 10, start=20)
    assert ladder.ceiling_bps == 172_500 and ladder.setting == Setting("reduced", 198_375)
    targets = [198_375]
    for now in range(30, 90):  # an encoder that sends what it is given
        sent = ladder.setting.target_bps or NOMINAL
        if ladder.update(float(now), sample(sent=sent)) is not None:
            targets.append(ladder.setting.target_bps or NOMINAL)
    assert all(b <= 1.15 * a + 1 for a, b in itertools.pairwise(targets))
    assert ladder.setting == Setting("normal")


def test_a_probe_goes_no_further_than_the_relays_remb() -> None:
    ladder = simulator_ladder(up_hold_s=4.0)
    feed(ladder, [sample(loss=0.4, estimate=150_000)] * 3)
    up = feed(ladder, [sample(sent=105_000, remb=130_000, remb_falling=False)] * 10, start=10)
    assert [c for _, c in up] == [Setting("reduced", 130_000)]
    # A REMB at or below the target is held from the congestion: it does not stop probes.
    held = feed(ladder, [sample(sent=130_000, remb=120_000, remb_falling=False)] * 20, start=20)
    assert held and held[0][1] == Setting("reduced", 172_500)


def test_an_encoder_below_its_target_still_climbs_back_to_normal() -> None:
    """The simulator's pattern needs less than it is given: its target must climb anyway,
    while the ceiling stands no further than a probe past it (a target unused now is used at
    the next keyframe), and once nothing has confirmed the ceiling for long, to full quality."""
    ladder = simulator_ladder(up_hold_s=2.0, up_hold_max_s=15.0)  # forgotten after 60 s
    feed(ladder, [sample(loss=0.4, estimate=150_000)] * 3)
    changes = []
    for now in range(10, 100):
        new = ladder.update(float(now), sample(sent=50_000))
        if new is not None:
            changes.append((ladder.ceiling_bps, new))
    assert changes and changes[-1][1] == Setting("normal")
    while_known = [new.target_bps for ceiling, new in changes if ceiling is not None]
    assert while_known and all(t is not None and t <= 1.15 * 150_000 for t in while_known)
    assert ladder.ceiling_bps is None  # forgotten: nothing sent ever showed the link carries more


def test_a_step_up_the_link_cannot_carry_doubles_the_hold() -> None:
    ladder = DegradeLadder(("normal", "keyframes"), None, config=LadderConfig(up_hold_s=4.0))
    ladder.setting = Setting("keyframes")
    assert ladder.levels == ("normal", "keyframes")
    clean, lossy = sample(sent=40_000), sample(loss=0.4)
    first = feed(ladder, [clean] * 6)
    assert [c.level for _, c in first] == ["normal"]
    down = feed(ladder, [lossy] * 4, start=10)
    assert [c.level for _, c in down] == ["keyframes"] and ladder.hold_s == 8.0
    # Now it waits 8 s of clean reports, not 4, before trying again.
    again = feed(ladder, [clean] * 12, start=20)
    assert again and again[0][0] - 20 >= 8.0
    # Holding the step up for `stable_s` forgets the failures.
    feed(ladder, [clean] * 40, start=40)
    assert ladder.hold_s == 4.0


def test_a_camera_with_a_substream_uses_it_before_keyframes_only() -> None:
    ladder = DegradeLadder(("normal", "substream", "keyframes"), None)
    assert ladder.levels == ("normal", "substream", "keyframes")
    down = feed(ladder, [sample(loss=0.3)] * 12)
    assert [c.level for _, c in down] == ["substream", "keyframes"]
    up = feed(ladder, [sample(sent=60_000)] * 30, start=20)
    assert [c.level for _, c in up] == ["substream", "normal"]


def test_reduced_needs_a_nominal_rate_above_the_floor() -> None:
    assert DegradeLadder(("normal", "reduced"), None).levels == ("normal", "keyframes")
    assert DegradeLadder(("normal", "reduced"), 50_000, 64_000).levels == (
        "normal",
        "keyframes",
    )


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        LadderConfig(loss_ok=0.1, loss_bad=0.05)
    with pytest.raises(ValueError):
        LadderConfig(increase=0.9)


# ---- the ladder closing the loop over a simulated thin link --------------------------------


def run_link(
    ladder: DegradeLadder, capacity: Sequence[int], seconds_each: int
) -> list[tuple[float, Level, int]]:
    """A link of `capacity` bit/s (one value per phase) under an encoder that hits its
    target exactly; the relay reports once a second. Returns (time, level, rate sent)."""
    est = UplinkEstimator()
    trace: list[tuple[float, Level, int]] = []
    now = 0.0
    queue_s = 0.0
    for cap in capacity:
        for _ in range(seconds_each):
            setting = ladder.setting
            rate = setting.target_bps if setting.level == "reduced" else NOMINAL
            assert rate is not None
            if setting.level == "keyframes":
                rate = rate // 10
            for i in range(FPS):
                est.sent(now + i / FPS, rate // 8 // FPS)
            now += 1.0
            loss = max(0.0, 1 - cap / rate) if rate > cap else 0.0
            queue_s = min(0.4, queue_s + 0.2) if rate > cap else max(0.0, queue_s - 0.2)
            est.report(now, loss, 0.002, 0.05 + queue_s)
            ladder.update(now, est.sample(now))
            trace.append((now, ladder.setting.level, rate))
    return trace


def test_at_150_kbits_video_fits_with_room_to_spare_and_does_not_flap() -> None:
    capacity = 150_000
    ladder = simulator_ladder()
    trace = run_link(ladder, [1_000_000, capacity, 1_000_000], seconds_each=120)
    thin = trace[150:240]  # the second half of the thin phase: settled
    assert {level for _, level, _ in thin} == {"reduced"}
    rates = sorted(rate for _, _, rate in thin)
    assert rates[len(rates) // 2] <= 0.75 * capacity  # it rests with room for status
    over = [rate for rate in rates if rate > capacity]
    assert len(over) <= 0.1 * len(thin)  # probes past the ceiling are short and rare
    probes = [t for (t, _, a), (_, _, b) in itertools.pairwise(thin) if b > a]
    assert all(b - a > 10 for a, b in itertools.pairwise(probes))  # holds doubled
    assert trace[-1][1] == "normal"  # and back to full quality once the link recovers


def test_a_new_network_forgets_the_ceiling_and_the_probe_hold() -> None:
    ladder = simulator_ladder()
    run_link(ladder, [150_000], seconds_each=90)
    assert ladder.ceiling_bps is not None and ladder.hold_s > 4.0
    ladder.forget()
    assert ladder.ceiling_bps is None and ladder.hold_s == 4.0
    assert ladder.setting.level == "reduced"  # the step stays until reports say otherwise


def test_reports_map_to_the_state_contract() -> None:
    report = UplinkReport("reduced", estimate_bps=140_000, loss=0.123, rtt_s=0.0814)
    status = uplink_status(report)
    assert status is not None and status.degraded and status.level == "reduced"
    assert status.loss_pct == 12.3 and status.rtt_ms == 81 and status.estimate_bps == 140_000
    assert uplink_status(None) is None
    assert not UplinkReport().degraded
    old = {
        "camera": {"connected": True},
        "versions": {"agent": "1"},
        "uptime_s": 1.0,
        "health": {
            "outbox_rows": 0,
            "outbox_dropped": 0,
            "mqtt_connects": 1,
            "commands_rejected": 0,
        },
    }
    assert UnitState.model_validate(old).uplink is None  # older units still validate
    new = UnitState.model_validate({**old, "uplink": {"degraded": True, "level": "keyframes"}})
    assert new.uplink is not None and new.uplink.estimate_bps is None
    with pytest.raises(ValueError):
        UnitState.model_validate({**old, "uplink": {"degraded": True, "colour": "red"}})
