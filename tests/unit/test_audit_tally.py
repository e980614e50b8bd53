"""How often a repeated event is written to the audit log (AuditTally, pure)."""

from __future__ import annotations

from central.access.tally import AuditTally


def test_the_first_is_recorded_the_rest_of_a_window_counted_into_the_next() -> None:
    tally = AuditTally(window_s=60)
    assert tally.due("key", 0.0) == 0
    assert [tally.due("key", t) for t in (1.0, 30.0, 59.9)] == [None, None, None]
    assert tally.due("other", 10.0) == 0  # each key on its own
    assert tally.due("key", 60.0) == 3  # stands for the three folded since
    assert tally.due("key", 61.0) is None
    assert tally.due("key", 125.0) == 1


def test_a_record_that_could_not_be_written_is_due_again_with_its_count() -> None:
    tally = AuditTally(window_s=60)
    tally.due("key", 0.0)
    for t in (1.0, 2.0):
        tally.due("key", t)
    folded = tally.due("key", 60.0)
    assert folded == 2
    assert tally.due("key", 60.2) is None  # counted while the failing write was under way
    tally.unrecorded("key", folded)
    # The next one is due at once and stands for the two, the one not written, the one
    # counted meanwhile, and itself.
    assert tally.due("key", 60.5) == 4
    assert tally.due("key", 61.0) is None


def test_the_table_is_bounded() -> None:
    tally = AuditTally(window_s=60, max_keys=3)
    for i in range(10):
        assert tally.due(i, float(i)) == 0
    # The newest stay; key 0, pushed out, is recorded anew although its window is not over.
    assert tally.due(9, 20.0) is None
    assert tally.due(0, 20.0) == 0
