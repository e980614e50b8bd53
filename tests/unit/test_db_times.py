"""Times in the database: epoch seconds in, the same microsecond out, on either engine (the
audit chain seals the time as the database keeps it)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from central.db.audit_chain import timestamp
from central.db.models import to_datetime, to_epoch

# From 1970 to 2200, to well below a microsecond.
moments = st.floats(min_value=0, max_value=7_258_118_400, allow_nan=False)


@given(moments)
def test_a_time_survives_the_database_to_the_microsecond(epoch_s: float) -> None:
    stored = to_datetime(epoch_s)
    assert stored.tzinfo is UTC
    back = to_epoch(stored)
    assert abs(back - epoch_s) < 1e-6
    assert to_datetime(back) == stored
    assert timestamp(back) == timestamp(epoch_s)


@given(moments)
def test_sqlite_s_naive_times_are_read_as_utc(epoch_s: float) -> None:
    stored = to_datetime(epoch_s)
    assert to_epoch(stored.replace(tzinfo=None)) == to_epoch(stored)


def test_a_time_in_another_zone_is_the_same_moment() -> None:
    moment = datetime.fromisoformat("2027-01-15T09:00:00.250000+01:00")
    assert to_epoch(moment) == 1_800_000_000.25
    assert timestamp(1_800_000_000.25) == "2027-01-15T08:00:00.250000Z"
