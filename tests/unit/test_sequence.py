import random

from hypothesis import given
from hypothesis import strategies as st

from central.sequence import SequenceTracker


def test_in_order_never_gaps() -> None:
    t = SequenceTracker(contiguous=0)
    assert not any(t.add(s, 0.0) for s in range(1, 100))
    assert t.contiguous == 99


def test_reordered_within_grace_is_not_a_gap() -> None:
    t = SequenceTracker(contiguous=0)
    assert not t.add(2, 0.0)
    assert not t.add(3, 0.5)
    assert not t.add(1, 1.0)
    assert t.contiguous == 3 and not t.expire(10.0)


def test_hole_that_stays_open_is_a_gap_once() -> None:
    t = SequenceTracker(contiguous=0)
    t.add(1, 0.0)
    assert not t.add(5, 0.0)
    assert not t.expire(1.9)
    assert t.expire(2.0)
    assert t.contiguous == 5 and not t.expire(100.0)
    assert not t.add(6, 100.0)


def test_many_messages_past_a_hole_is_a_gap_at_once() -> None:
    t = SequenceTracker(contiguous=0, window=8)
    gaps = [t.add(s, 0.0) for s in range(2, 12)]
    assert gaps.count(True) == 1 and t.contiguous >= 9


def test_repeats_are_recognised() -> None:
    t = SequenceTracker(contiguous=3)
    t.add(5, 0.0)
    assert t.seen(2) and t.seen(5) and not t.seen(4)


@given(st.integers(1, 200), st.randoms(use_true_random=False), st.integers(1, 16))
def test_any_bounded_shuffle_is_never_a_gap(n: int, rng: random.Random, spread: int) -> None:
    # Each message arrives at most `spread` places from where it was sent.
    order = sorted(range(1, n + 1), key=lambda s: s + rng.uniform(0, spread))
    t = SequenceTracker(contiguous=0)
    assert not any(t.add(s, 0.0) for s in order)
    assert t.contiguous == n


@given(st.sets(st.integers(1, 100), min_size=1, max_size=99))
def test_any_loss_is_reported_after_grace(lost: set[int]) -> None:
    received = set(range(1, 101)) - lost
    t = SequenceTracker(contiguous=0, window=1000)
    for s in sorted(received):
        t.add(s, 0.0)
    # A loss shows only as a hole below something that did arrive.
    assert t.expire(10.0) == (min(lost) < max(received))
