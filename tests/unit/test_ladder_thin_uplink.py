"""The degrade ladder on a thin uplink (150 kbit/s in the chaos lab): no raise past the probe
target once a ceiling is known, and the relay's REMB never taken for room. The numbers are
those of the runs that lost packets; the ladder is fed samples, no clock, no sockets."""

from __future__ import annotations

from agent.ladder import Setting
from tests.unit.test_uplink import feed, sample, simulator_ladder


def test_an_encoder_short_of_its_probe_target_is_not_raised_past_it() -> None:
    """Ceiling 124.2 kbit/s (the least sent over a clean hold), the target at its probe
    (142.8 kbit/s), the encoder sending 116.4 kbit/s: the ladder used to raise to 185.7
    kbit/s (x1.3, "sends less than it has"); the encoder used it and 36 % was lost."""
    ladder = simulator_ladder()
    feed(ladder, [sample(loss=0.4, estimate=124_192)] * 3)
    ladder.setting = Setting("reduced", 142_821)  # 1.15 x the ceiling: its probe target
    short = sample(sent=116_428, remb=130_138, remb_falling=False)
    assert feed(ladder, [short] * 60, start=10) == []
    assert ladder.ceiling_bps == 124_192  # nothing sent showed more


def test_a_remb_alone_lifts_neither_the_ceiling_nor_an_unused_target() -> None:
    """The relay's REMB fell to 178 kbit/s while a keyframe had 240 kbit/s sent: a step down
    to 124.6 kbit/s (0.7 x 178). The ladder then took 178 kbit/s for the ceiling of a
    150 kbit/s link, and with the encoder sending 99.5 kbit/s and the REMB back at 204
    kbit/s it raised the target to 162.0 kbit/s (x1.3, "unused by the encoder"), which the
    next keyframe used: 29 % lost."""
    ladder = simulator_ladder()
    feed(ladder, [sample(loss=0.4, estimate=124_192)] * 3)  # the thin link's first loss
    ladder.setting = Setting("reduced", 185_667)  # where the raise above had put it
    burst = sample(sent=240_000, remb=178_000, estimate=178_000)
    down = feed(ladder, [burst] * 2, start=10)
    assert [c for _, c in down] == [Setting("reduced", 124_600)] and ladder.reason == "remb"
    assert ladder.ceiling_bps == 124_192  # neither raised to the REMB...
    clean = sample(sent=99_500, remb=204_000, remb_falling=False)
    up = feed(ladder, [clean] * 60, start=20)
    # ...nor a target raised past a probe of the ceiling: once, to 1.15 x 124.2 kbit/s.
    assert [c for _, c in up] == [Setting("reduced", 142_821)]


def test_a_probe_past_a_ceiling_taken_at_the_first_loss_goes_no_further() -> None:
    """Ceiling 133 kbit/s (the estimate at the first loss), a probe from 107.9 to 152.9
    kbit/s (1.15 x), then 19 % lost. The probe is the one step past the ceiling the ladder
    allows; an encoder short of it and a REMB far above it take it no further, and when it
    fails the ladder backs off to what arrived and waits twice as long before the next."""
    ladder = simulator_ladder(up_hold_s=4.0)
    feed(ladder, [sample(loss=0.4, estimate=132_950)] * 3)
    assert ladder.ceiling_bps == 132_950
    ladder.setting = Setting("reduced", 107_900)
    probe = feed(ladder, [sample(sent=100_000, remb=204_000, remb_falling=False)] * 8, start=10)
    assert [c for _, c in probe] == [Setting("reduced", 152_892)]
    # Clean, the encoder below its target (this used to be raised 1.3x, to 198.8 kbit/s).
    short = sample(sent=130_000, remb=204_000, remb_falling=False)
    assert feed(ladder, [short] * 12, start=18) == []
    lossy = sample(sent=150_000, loss=0.19, remb=204_000, remb_falling=False)
    down = feed(ladder, [lossy] * 2, start=30)
    assert [c.level for _, c in down] == ["reduced"] and ladder.reason == "loss"
    assert ladder.ceiling_bps == 121_500 and ladder.hold_s == 8.0  # what arrived: 81 %
    after = feed(ladder, [sample(sent=85_000, remb=204_000, remb_falling=False)] * 30, start=40)
    assert after and after[0][0] - 40 >= 8.0 - 1  # the probe hold, doubled
    assert all((c.target_bps or 0) <= round(1.15 * 121_500) for _, c in after)


def test_the_ceiling_comes_from_what_arrived_not_from_a_remb_above_it() -> None:
    ladder = simulator_ladder()
    # Loss while 200 kbit/s is sent; the relay's REMB reads 178 kbit/s: 90 % of it arrived.
    lossy = sample(sent=200_000, loss=0.1, remb=178_000, estimate=178_000)
    feed(ladder, [lossy] * 2)
    assert ladder.reason == "loss" and ladder.ceiling_bps == 178_000
    # A REMB below what arrived is believed (it is the relay's measure of what came in).
    feed(ladder, [sample(sent=200_000, loss=0.1, estimate=90_000)] * 2, start=10)
    assert ladder.ceiling_bps == 90_000


def test_queueing_alone_steps_down_and_sets_no_ceiling() -> None:
    """A jittery path reads as queueing with nothing lost: no ceiling to hold video low."""
    ladder = simulator_ladder()
    queued = sample(sent=120_000, queueing=0.7, remb=178_000, estimate=178_000)
    down = feed(ladder, [queued] * 2)
    assert [c.level for _, c in down] == ["reduced"] and ladder.reason == "queueing"
    assert ladder.ceiling_bps is None
    up = feed(ladder, [sample(sent=300_000)] * 60, start=10)
    assert up[-1][1].level == "normal"
    # A falling REMB alone steps down, and leaves an unknown ceiling unknown.
    fresh = simulator_ladder()
    feed(fresh, [sample(sent=280_000, remb=150_000, estimate=150_000)] * 2)
    assert fresh.reason == "remb" and fresh.setting.level == "reduced"
    assert fresh.ceiling_bps is None


def test_coming_back_from_keyframes_starts_no_further_than_a_probe() -> None:
    ladder = simulator_ladder()
    feed(ladder, [sample(loss=0.4, estimate=60_000)] * 3)
    ladder.setting = Setting("keyframes", 64_000)
    up = feed(ladder, [sample(sent=60_000)] * 10, start=10)
    assert [c for _, c in up][:1] == [Setting("reduced", 69_000)]  # not 1.3 x 60 kbit/s


def test_congestion_keeps_the_ceiling_and_a_long_uncongested_link_forgets_it() -> None:
    ladder = simulator_ladder(up_hold_max_s=15.0)  # four of them: 60 s
    feed(ladder, [sample(loss=0.4, estimate=150_000)] * 3)
    feed(ladder, [sample(sent=100_000)] * 40, start=10)
    feed(ladder, [sample(sent=100_000, loss=0.1)], start=50)  # one lossy report: still this link
    feed(ladder, [sample(sent=100_000, loss=0.05)] * 59, start=51)  # not clean, not congested
    assert ladder.ceiling_bps is not None
    feed(ladder, [sample(sent=100_000)] * 2, start=110)
    assert ladder.ceiling_bps is None


def test_a_failed_probe_does_not_raise_the_ceiling() -> None:
    """150 kbit/s in the lab: a step down at 19.2 % loss with 188.8 kbit/s in the sent window
    (a keyframe in it) read as 152.6 kbit/s arrived. Taken for the ceiling, it let the target
    climb unused to 138.9 kbit/s and the next probe go to 175.5 kbit/s."""
    ladder = simulator_ladder()
    feed(ladder, [sample(loss=0.4, estimate=103_090)] * 3)
    ladder.setting = Setting("reduced", 118_554)  # the probe: 1.15 x the ceiling
    lossy = sample(sent=188_772, loss=0.192, estimate=152_640)
    down = feed(ladder, [lossy] * 2, start=10)
    assert [c for _, c in down] == [Setting("reduced", 88_916)] and ladder.reason == "loss"
    assert ladder.ceiling_bps == 103_090
    # It does fall to what arrived when that is less.
    feed(ladder, [sample(sent=100_000, loss=0.3, estimate=70_000)] * 2, start=20)
    assert ladder.ceiling_bps == 70_000
