from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from central.registry import Outcome, Partition, Registry, Verdict
from protocol import Envelope, Event, Message, Presence, Topic, encode
from tests.unit.test_codec import state


class Sent:
    """A message as the registry receives it: decoded, with the bytes it came from."""

    def __init__(
        self, topic: Topic, body: Any, sid: int, seq: int, msg_id: uuid.UUID | None
    ) -> None:
        env: Envelope[Any] = Envelope(
            id=msg_id or uuid.uuid4(), sid=sid, seq=seq, ts=1.0, body=body
        )
        self.payload = encode(topic, env)
        self.message = Message(topic, env)


def msg(topic: Topic, body: Any, sid: int, seq: int, msg_id: uuid.UUID | None = None) -> Sent:
    return Sent(topic, body, sid, seq, msg_id)


def apply(reg: Registry, sent: Sent, now: float, retained: bool = False) -> Verdict:
    return reg.apply(sent.message, sent.payload, now, retained)


def birth(sid: int, seq: int = 1) -> Sent:
    return msg(Topic.presence("u1"), Presence(online=True, reason="birth"), sid, seq)


def will(sid: int) -> Sent:
    return msg(Topic.presence("u1"), Presence(online=False, reason="lwt"), sid, 0)


def event(sid: int, seq: int, msg_id: uuid.UUID | None = None) -> Sent:
    return msg(Topic.event("u1", "x"), Event(type="x"), sid, seq, msg_id)


def test_presence_follows_birth_and_will() -> None:
    reg = Registry()
    assert apply(reg, birth(1), 10.0).presence_changed
    assert reg.get("u1").online is True  # type: ignore[union-attr]
    assert apply(reg, will(1), 11.0).presence_changed
    assert reg.get("u1").online is False  # type: ignore[union-attr]
    assert reg.online_count() == 0


def test_late_will_of_an_older_session_is_stale() -> None:
    reg = Registry()
    apply(reg, birth(2), 1.0)
    assert apply(reg, will(1), 2.0).outcome is Outcome.STALE
    assert reg.get("u1").online is True  # type: ignore[union-attr]


def test_repeated_message_id_is_a_duplicate() -> None:
    reg = Registry()
    apply(reg, birth(1), 1.0)
    same = uuid.uuid4()
    assert apply(reg, event(1, 2, same), 1.0).outcome is Outcome.APPLIED
    # Store-and-forward resends keep the id but travel in a new session with a new seq.
    apply(reg, birth(2), 2.0)
    assert apply(reg, event(2, 2, same), 2.0).outcome is Outcome.DUPLICATE


def test_seq_gap_is_reported_once_after_the_reorder_grace() -> None:
    reg = Registry()
    apply(reg, birth(1), 1.0)
    assert not apply(reg, event(1, 2), 1.0).gap
    assert not apply(reg, event(1, 5), 1.0).gap
    assert reg.expire_holes(2.0) == []
    assert reg.expire_holes(3.5) == ["u1"]
    assert reg.expire_holes(10.0) == []
    assert not apply(reg, event(1, 6), 11.0).gap


def test_reordered_messages_are_kept_and_no_gap() -> None:
    reg = Registry()
    apply(reg, birth(1), 1.0)
    for seq in (3, 5, 2, 4):
        assert apply(reg, event(1, seq), 1.0).outcome is Outcome.APPLIED
    assert reg.expire_holes(100.0) == []


def test_new_session_missing_its_start_is_a_gap() -> None:
    reg = Registry()
    apply(reg, birth(1), 1.0)
    apply(reg, event(2, 7), 1.0)
    assert reg.expire_holes(5.0) == ["u1"]
    apply(reg, birth(3, 1), 6.0)
    assert reg.expire_holes(20.0) == []


def test_older_state_never_replaces_newer() -> None:
    reg = Registry()
    apply(reg, birth(1), 1.0)
    apply(reg, msg(Topic.state("u1"), state(battery_pct=10.0), 1, 3), 1.0)
    assert (
        apply(reg, msg(Topic.state("u1"), state(battery_pct=90.0), 1, 2), 1.0).outcome
        is Outcome.STALE
    )
    assert reg.get("u1").state.battery_pct == 10.0  # type: ignore[union-attr]


def test_first_contact_is_a_baseline_not_a_gap() -> None:
    reg = Registry()
    assert not apply(reg, event(4, 40), 1.0).gap
    assert reg.expire_holes(100.0) == []


def test_rebirth_counts_in_the_sequence() -> None:
    reg = Registry()
    apply(reg, birth(1), 1.0)
    apply(reg, msg(Topic.presence("u1"), Presence(online=True, reason="rebirth"), 1, 2), 1.0)
    assert not apply(reg, msg(Topic.state("u1"), state(), 1, 3), 1.0).gap


def test_retained_messages_never_count_as_gaps() -> None:
    reg = Registry()
    apply(reg, birth(1), 1.0)
    verdict = apply(reg, msg(Topic.state("u1"), state(), 1, 90), 1.0, retained=True)
    assert verdict.outcome is Outcome.APPLIED and not verdict.gap
    assert reg.get("u1").state is not None  # type: ignore[union-attr]


def test_state_of_an_older_session_is_stale_but_events_count() -> None:
    reg = Registry()
    apply(reg, birth(3), 1.0)
    assert apply(reg, msg(Topic.state("u1"), state(), 2, 5), 1.0).outcome is Outcome.STALE
    assert apply(reg, event(2, 6), 1.0).outcome is Outcome.APPLIED


def test_registry_is_bounded() -> None:
    reg = Registry(max_units=2)
    for unit in ("a", "b"):
        apply(reg, msg(Topic.presence(unit), Presence(online=True, reason="birth"), 1, 1), 1.0)
    extra = msg(Topic.presence("c"), Presence(online=True, reason="birth"), 1, 1)
    assert apply(reg, extra, 1.0).outcome is Outcome.REFUSED
    assert len(reg) == 2 and reg.get("c") is None


def test_rebirth_requests_are_rate_limited() -> None:
    reg = Registry()
    apply(reg, birth(1), 1.0)
    assert reg.rebirth_due("u1", 100.0)
    assert not reg.rebirth_due("u1", 101.0)
    assert reg.rebirth_due("u1", 106.0)
    assert not reg.rebirth_due("unknown", 200.0)


def test_partition_splits_units_between_processes() -> None:
    units = [f"unit-{n}" for n in range(200)]
    parts = [Partition(i, 3) for i in range(3)]
    owners = [[p.owns(u) for p in parts].count(True) for u in units]
    assert owners == [1] * len(units)
    reg = Registry(Partition(0, 3))
    foreign = next(u for u in units if not reg.partition.owns(u))
    m = msg(Topic.presence(foreign), Presence(online=True, reason="birth"), 1, 1)
    assert apply(reg, m, 1.0).outcome is Outcome.NOT_MINE
    assert len(reg) == 0


@given(st.lists(st.tuples(st.integers(1, 4), st.integers(0, 30), st.booleans()), max_size=60))
def test_any_message_order_keeps_invariants(steps: list[tuple[int, int, bool]]) -> None:
    reg = Registry()
    seen: list[int] = []
    for sid, seq, retained in steps:
        verdict = apply(reg, event(sid, seq), 1.0, retained)
        seen.append(sid)
        record = reg.get("u1")
        assert record is not None
        assert record.sid == max(seen)
        assert verdict.outcome is Outcome.APPLIED  # an event is never dropped by seq
        assert not (retained and verdict.gap)
