import math

from firmware_bridge.sim.unit import SimulatedUnit


def test_deterministic_for_a_seed() -> None:
    a, b = SimulatedUnit(7, 40.0, -74.0), SimulatedUnit(7, 40.0, -74.0)
    assert [a.poll(t) for t in range(0, 600, 7)] == [b.poll(t) for t in range(0, 600, 7)]


def test_moves_around_its_point_and_drains() -> None:
    unit = SimulatedUnit(
        1, 40.0, -74.0, radius_m=500, speed_mps=10, event_interval_s=0, battery_drain_pct_per_h=10
    )
    first, _ = unit.poll(1000.0)
    later, events = unit.poll(1360.0)
    assert first.fix is not None and later.fix is not None
    assert events == []
    moved = math.dist((first.fix.lat, first.fix.lon), (later.fix.lat, later.fix.lon))
    assert moved > 0
    assert abs(later.fix.lat - 40.0) < 0.02 and abs(later.fix.lon + 74.0) < 0.02
    assert later.battery_pct < first.battery_pct
    assert 0 <= later.fix.heading_deg < 360


def test_heading_points_along_the_track() -> None:
    unit = SimulatedUnit(3, 0.0, 0.0, radius_m=1000, speed_mps=10, event_interval_s=0)
    a, _ = unit.poll(0.0)
    b, _ = unit.poll(1.0)
    assert a.fix is not None and b.fix is not None
    bearing = math.degrees(math.atan2(b.fix.lon - a.fix.lon, b.fix.lat - a.fix.lat)) % 360
    diff = abs((bearing - b.fix.heading_deg + 180) % 360 - 180)
    assert diff < 5


def test_events_arrive_on_average_as_configured() -> None:
    unit = SimulatedUnit(5, 40.0, -74.0, event_interval_s=10)
    unit.poll(0.0)
    _, events = unit.poll(10_000.0)
    assert 700 < len(events) < 1300
    assert all(0 <= e.ts <= 10_000 for e in events)
