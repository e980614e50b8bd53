"""The console's pure cores: the live feed's ids, catch-up and slow pages; the unit's one
colour on the map; which alerts a trigger or a unit's state raises, once per condition."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from central.alert_rules import AlertKind, Thresholds, UnitWatch, kind_of
from central.live_feed import CONSOLE, CatchUp, FeedEvent, FeedLog, PageQueue, unit_audience
from central.unit_board import Reading, StateLabel, reading_of, state_label, summarize
from protocol import CameraStatus
from protocol.events import EventType
from protocol.models import StorageStatus
from tests.unit.test_codec import state


def test_a_page_back_with_its_last_id_gets_what_it_missed_for_its_audience_only() -> None:
    log = FeedLog(history=10, generation="g1")
    first = log.add("units", b"{}", {CONSOLE})
    log.add("share", b"{}", {unit_audience("u-1")})
    third = log.add("alert", b"{}", {CONSOLE})
    assert log.event_id(first) == "g1.1"
    assert log.parse_id("g1.1") == 1
    assert _ids(log.since(1, CONSOLE)) == [third.id]
    assert [e.name for e in _events(log.since(0, unit_audience("u-1")))] == ["share"]
    assert log.since(3, CONSOLE) == CatchUp([], [], 3)


def _events(missed: CatchUp | None) -> list[FeedEvent]:
    assert missed is not None
    return missed.events


def _ids(missed: CatchUp | None) -> list[int]:
    return [e.id for e in _events(missed)]


def test_a_page_back_gets_the_units_changed_since_its_id_each_once() -> None:
    log = FeedLog(history=3, generation="g")
    first = log.units_changed(["u-1", "u-2"])
    alert = log.add("alert", b"{}", {CONSOLE})
    last = log.units_changed(["u-2", "u-3"])
    assert (first, alert.id, last) == (1, 2, 3)
    assert log.since(0, CONSOLE) == CatchUp([alert], ["u-1", "u-2", "u-3"], 3)
    assert log.since(1, CONSOLE) == CatchUp([alert], ["u-2", "u-3"], 3)
    assert log.since(2, unit_audience("u-1")) == CatchUp([], [], 3)
    assert log.since(2, unit_audience("u-3")) == CatchUp([], ["u-3"], 3)
    for _ in range(1000):  # unit changes fill no history: the alert is still kept
        log.units_changed(["u-1"])
    assert _ids(log.since(1, CONSOLE)) == [alert.id]


def test_ids_of_another_run_or_forgotten_events_mean_a_snapshot() -> None:
    log = FeedLog(history=3, generation="g2")
    for _ in range(10):
        log.add("units", b"{}", {CONSOLE})
    assert log.parse_id("g1.5") is None  # another process or an earlier run
    assert log.parse_id("g2.x") is None and log.parse_id("") is None
    assert log.parse_id(None) is None and log.parse_id("g2." + "9" * 40) is None
    assert log.since(5, CONSOLE) is None  # 6 and 7 are no longer kept
    assert _ids(log.since(7, CONSOLE)) == [8, 9, 10]
    assert log.since(11, CONSOLE) is None  # from the future: not ours


def test_a_slow_page_is_told_to_resync_and_holds_nobody_back() -> None:
    log = FeedLog(history=100, generation="g")
    slow, other = PageQueue(CONSOLE, bound=2), PageQueue(unit_audience("u-1"), bound=2)
    offered = [slow.offer(log.add("units", b"{}", {CONSOLE})) for _ in range(3)]
    assert offered == [True, True, False]
    assert slow.resync and slow.take() == []
    assert slow.offer(log.add("units", b"{}", {CONSOLE}))  # dropped until it resyncs
    assert other.take() == [] and not other.resync


@given(st.lists(st.sampled_from([CONSOLE, "unit:a", "unit:b"]), max_size=60), st.integers(0, 70))
def test_catch_up_is_exactly_the_later_events_of_the_audience(
    audiences: list[str], seen: int
) -> None:
    log = FeedLog(history=20, generation="g")
    added = [log.add("e", b"{}", {audience}) for audience in audiences]
    missed = log.since(seen, "unit:a")
    if missed is None:
        assert seen > len(added) or seen < len(added) - 20
        return
    assert [e.id for e in missed.events] == [
        e.id for e in added if e.id > seen and "unit:a" in e.audiences
    ]


def test_a_unit_has_one_colour_the_most_urgent() -> None:
    recording = reading_of(state(camera=CameraStatus(connected=True, recording=True)))
    assert state_label(True, recording, live=False, alerting=True) is StateLabel.ALERT
    assert state_label(False, recording, live=False, alerting=False) is StateLabel.OFFLINE
    assert state_label(None, None, live=False, alerting=False) is StateLabel.OFFLINE
    assert state_label(True, recording, live=True, alerting=False) is StateLabel.LIVE
    assert state_label(True, recording, live=False, alerting=False) is StateLabel.RECORDING
    idle = reading_of(state())
    assert state_label(True, idle, live=False, alerting=False) is StateLabel.AVAILABLE
    quarter = state(storage=StorageStatus(free_bytes=1, total_bytes=4))
    assert reading_of(quarter)["storage_free_pct"] == 25.0
    empty = state(storage=StorageStatus(free_bytes=0, total_bytes=0))
    assert reading_of(empty)["storage_free_pct"] is None


def test_a_summary_of_a_unit_known_only_by_its_presence() -> None:
    summary = summarize("u-1", True, 5.0, None, "car-1", None, alerting=False)
    assert summary["state_label"] == StateLabel.AVAILABLE and summary["lat"] is None
    assert summary["camera_connected"] is None and summary["officer"] == "car-1"
    moving = reading_of(state())
    shown = summarize("u-1", True, 5.0, moving, None, "s-1", alerting=False)
    assert (shown["lat"], shown["lon"], shown["state_label"]) == (40.0, -74.0, StateLabel.LIVE)


def test_what_each_trigger_means_to_a_dispatcher() -> None:
    assert kind_of(EventType.TRIGGER_HOLSTER_DRAW) is AlertKind.WEAPON_DRAWN
    assert kind_of(EventType.TRIGGER_GUNSHOT) is AlertKind.GUNSHOT
    assert kind_of(EventType.TRIGGER_MAN_DOWN) is AlertKind.MAN_DOWN
    assert kind_of(EventType.BUTTON_WATCH_ME) is AlertKind.WATCH_ME
    assert kind_of("trigger.lightbar") is AlertKind.OTHER and kind_of(None) is AlertKind.OTHER


def _with(battery: float, free: int = 50, recording: bool = False) -> Reading:
    storage = StorageStatus(free_bytes=free, total_bytes=100)
    camera = CameraStatus(connected=True, recording=recording)
    return reading_of(state(battery_pct=battery, storage=storage, camera=camera))


def test_the_center_alerts_once_per_condition_and_again_only_after_it_cleared() -> None:
    watch = UnitWatch(Thresholds(battery_pct=10, storage_free_pct=5, hysteresis_pct=3))
    assert watch.observe("u", True, _with(50)) == []
    assert watch.observe("u", True, _with(9)) == [AlertKind.BATTERY_CRITICAL]
    assert watch.observe("u", True, _with(8)) == []
    assert watch.observe("u", True, _with(12)) == []  # within the hysteresis: still low
    assert watch.observe("u", True, _with(14)) == []  # cleared
    assert watch.observe("u", True, _with(10)) == [AlertKind.BATTERY_CRITICAL]
    assert watch.observe("u", True, _with(50, free=4)) == [AlertKind.STORAGE_CRITICAL]
    assert watch.observe("u", True, _with(50, free=4)) == []


def test_a_unit_gone_offline_while_recording_is_an_alert_a_quiet_one_is_not() -> None:
    watch = UnitWatch(Thresholds())
    assert watch.observe("u", True, _with(50, recording=True)) == []
    assert watch.observe("u", False, _with(50, recording=True)) == [AlertKind.OFFLINE_RECORDING]
    assert watch.observe("u", False, None) == []  # still offline: no second alert
    assert watch.observe("v", True, _with(50)) == []
    assert watch.observe("v", False, None) == []


@given(st.one_of(st.text(max_size=80), st.from_regex(r"abcd1234\.[0-9]{1,20}", fullmatch=True)))
def test_any_last_event_id_is_one_of_ours_or_means_a_snapshot(text: str) -> None:
    log = FeedLog(history=5, generation="abcd1234")
    log.add("units", b"{}", {CONSOLE})
    seen = log.parse_id(text)
    if seen is None:
        return
    assert text == f"abcd1234.{text.partition('.')[2]}" and seen >= 0
    assert log.since(seen, CONSOLE) == (
        CatchUp([], [], 1) if seen == 1 else None if seen > 1 else log.since(0, CONSOLE)
    )


def test_the_log_keeps_no_more_bytes_than_its_bound() -> None:
    log = FeedLog(history=1000, generation="g", max_bytes=100)
    for _ in range(10):
        log.add("units", b"x" * 30, {CONSOLE})
    assert _ids(log.since(7, CONSOLE)) == [8, 9, 10]
    assert log.since(6, CONSOLE) is None
