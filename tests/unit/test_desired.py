"""The desired-stream plan: what the center asks of units, and when."""

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from central.desired import (
    BIRTH_GRACE_S,
    MEDIA_GRACE_S,
    SELF_HEAL_GRACE_S,
    ActionKind,
    DesiredStream,
    DesiredStreamRecord,
    StreamPlan,
)
from runtime.backoff import Backoff

ONLINE: Callable[[str], bool] = lambda _unit: True  # noqa: E731
OFFLINE: Callable[[str], bool] = lambda _unit: False  # noqa: E731


def plan_with_stream(now: float = 100.0) -> tuple[StreamPlan, DesiredStream]:
    plan = StreamPlan(start_timeout_s=10.0, rand=lambda: 1.0)
    stream, new = plan.want("u1", "api", "pursuit", now + 3600, now, lambda: "u1-s")
    assert new
    return plan, stream


def test_one_desired_stream_per_unit_and_a_later_end_extends_it() -> None:
    plan, stream = plan_with_stream()
    again, new = plan.want("u1", "alert", "", 100 + 7200, 101, lambda: "other")
    assert not new and again is stream and stream.record.until == 100 + 7200
    shorter, _ = plan.want("u1", "api", "", 150, 102, lambda: "other")
    assert shorter.record.until == 100 + 7200


def test_a_stream_without_media_is_started_then_waited_for() -> None:
    plan, stream = plan_with_stream()
    actions = plan.due(100, ONLINE)
    assert [(a.kind, a.republish) for a in actions] == [(ActionKind.START, False)]
    assert plan.due(101, ONLINE) == []  # in flight
    plan.start_finished(stream.stream_id, True, 101)
    assert plan.due(101 + MEDIA_GRACE_S - 0.1, ONLINE) == []
    retry = plan.due(101 + MEDIA_GRACE_S, ONLINE)
    assert [a.republish for a in retry] == [True]  # media never came: ask again


def test_live_streams_and_offline_units_are_left_alone() -> None:
    plan, stream = plan_with_stream()
    assert plan.due(100, OFFLINE) == []
    plan.observe(stream.stream_id, True, 100)
    assert plan.due(200, ONLINE) == []


def test_media_that_stops_gets_the_publisher_a_moment_to_heal_itself() -> None:
    plan, stream = plan_with_stream()
    plan.observe(stream.stream_id, True, 100)
    plan.observe(stream.stream_id, False, 110)
    assert plan.due(110 + SELF_HEAL_GRACE_S - 0.1, ONLINE) == []
    assert [a.kind for a in plan.due(110 + SELF_HEAL_GRACE_S, ONLINE)] == [ActionKind.START]


def test_a_restarted_relay_worker_means_ask_now() -> None:
    plan, stream = plan_with_stream()
    plan.observe(stream.stream_id, True, 100)
    plan.relay_lost([stream.stream_id, "unknown"], 105)
    assert [a.kind for a in plan.due(105, ONLINE)] == [ActionKind.START]


def test_a_unit_birth_resets_backoff_after_a_short_grace() -> None:
    plan, stream = plan_with_stream()
    for t in range(3):
        plan.due(100 + 100 * t, ONLINE)
        plan.start_finished(stream.stream_id, False, 100 + 100 * t)
    assert stream.attempts == 3
    plan.unit_born("u1", 500)
    assert stream.attempts == 0
    assert plan.due(500, ONLINE) == []
    assert len(plan.due(500 + BIRTH_GRACE_S, ONLINE)) == 1


def test_failures_back_off_and_an_unanswered_start_counts_as_one() -> None:
    plan = StreamPlan(start_timeout_s=10.0, retry=Backoff(1.0, 8.0), rand=lambda: 1.0)
    stream, _ = plan.want("u1", "api", "", 10_000, 0, lambda: "s")
    assert plan.due(0, ONLINE)
    assert plan.due(9.9, ONLINE) == []
    assert plan.due(10, ONLINE) == []  # timed out: failure 1, next try 2 s later
    assert stream.attempts == 1 and stream.next_try == 12
    assert plan.due(12, ONLINE)
    plan.start_finished("s", False, 12)
    assert stream.next_try == 16


def test_an_expired_request_is_stopped_and_forgotten() -> None:
    plan, stream = plan_with_stream()
    actions = plan.due(100 + 3600, ONLINE)
    assert [(a.kind, a.stream) for a in actions] == [(ActionKind.STOP, stream)]
    assert plan.streams() == []


def test_restored_streams_skip_expired_ones_and_ask_the_unit_to_rebuild() -> None:
    _, stream = plan_with_stream()
    old = stream.record
    expired = old.model_copy(update={"stream_id": "gone", "unit_id": "u2", "until": 50.0})
    fresh = StreamPlan()
    fresh.restore([old, expired], 200)
    assert [s.stream_id for s in fresh.streams()] == [old.stream_id]
    assert [a.republish for a in fresh.due(200, ONLINE)] == [True]


def test_the_answer_to_an_older_start_settles_nothing() -> None:
    plan, stream = plan_with_stream()
    first = plan.due(100, ONLINE)[0]
    plan.relay_lost([stream.stream_id], 101)  # the worker died meanwhile: ask again now
    second = plan.due(101, ONLINE)[0]
    assert second.attempt_id != first.attempt_id
    plan.start_finished(stream.stream_id, False, 102, first.attempt_id)  # late failure
    assert stream.start_sent == 101 and stream.attempts == 0
    plan.start_finished(stream.stream_id, True, 102, second.attempt_id)
    assert stream.start_sent is None


def test_restore_keeps_one_stream_per_unit_and_refuses_bad_records() -> None:
    _, stream = plan_with_stream()
    twin = stream.record.model_copy(update={"stream_id": "u1-other"})
    fresh = StreamPlan()
    fresh.restore([stream.record, twin], 200)
    assert [s.stream_id for s in fresh.streams()] == [stream.stream_id]
    for bad in ({"stream_id": "../x"}, {"until": float("inf")}, {"unit_id": "a b"}):
        with pytest.raises(ValidationError):
            DesiredStreamRecord.model_validate({**stream.record.model_dump(), **bad})


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["observe", "born", "lost", "finished", "due"]),
            st.booleans(),
            st.floats(min_value=0, max_value=5),
        ),
        max_size=60,
    )
)
def test_never_two_starts_in_flight_and_never_a_start_for_a_live_stream(
    steps: list[tuple[str, bool, float]],
) -> None:
    plan, stream = plan_with_stream(0)
    now = 0.0
    in_flight = False
    for op, flag, dt in steps:
        now += dt
        if op == "observe":
            plan.observe(stream.stream_id, flag, now)
            in_flight = in_flight and not flag
        elif op == "born":
            plan.unit_born("u1", now)
            in_flight = in_flight and stream.live
        elif op == "lost":
            plan.relay_lost([stream.stream_id], now)
            in_flight = False
        elif op == "finished":
            plan.start_finished(stream.stream_id, flag, now)
            in_flight = False
        else:
            starts = [a for a in plan.due(now, ONLINE) if a.kind is ActionKind.START]
            if starts:
                assert not stream.live
                assert not in_flight or stream.start_sent == now
                in_flight = True
            assert len(starts) <= 1
