"""What one pass of the broker's keeper must do, from the records it last applied and the
records now (pure)."""

from __future__ import annotations

from central.broker_access import Work
from central.db.devices import DeviceStanding


def standing(enrolled: set[str], revoked: dict[str, str]) -> DeviceStanding:
    known = frozenset(enrolled | set(revoked.values()))
    return DeviceStanding(frozenset(enrolled), revoked, known)


def test_nothing_changed_means_nothing_to_do_until_the_minute_or_the_day() -> None:
    now = standing({"P-1"}, {"a1": "P-2"})
    assert Work.plan(now, now, False, False) == Work(frozenset(), False, False)
    assert Work.plan(now, now, False, True) == Work(frozenset(), False, True)
    assert Work.plan(now, now, True, False) == Work(frozenset(), True, False)


def test_a_revoked_serial_writes_the_crl_kicks_its_unit_and_syncs() -> None:
    before = standing({"P-1", "P-2"}, {})
    after = standing({"P-1"}, {"b7": "P-2"})
    assert Work.plan(before, after, False, False) == Work(frozenset({"P-2"}), True, True)


def test_a_replaced_gateway_is_kicked_and_its_unit_stays_enrolled() -> None:
    before = standing({"P-1"}, {})
    after = standing({"P-1"}, {"c3": "P-1"})  # the old serial revoked, a new one issued
    work = Work.plan(before, after, False, False)
    assert work.lost == {"P-1"} and work.write_crl and work.sync
    assert work.lost - after.enrolled == set()  # not treated as revoked: no offline, no stop


def test_a_new_enrollment_only_syncs() -> None:
    before = standing({"P-1"}, {})
    after = standing({"P-1", "P-9"}, {})
    assert Work.plan(before, after, False, False) == Work(frozenset(), False, True)


def test_a_shut_out_unit_is_one_that_enrolled_and_holds_no_valid_certificate() -> None:
    now = standing({"P-1"}, {"d4": "P-2"})
    assert now.shut_out("P-2") and not now.shut_out("P-1") and not now.shut_out("never")
