"""gpsd's JSON reports -> the unit's fix (pure)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from agent.vehicle.gpsd_reports import Devices, Report, parse_line
from protocol.models import FixKind

TPV = {
    "class": "TPV",
    "mode": 3,
    "time": "2024-05-01T12:00:05.000Z",
    "lat": 40.7128,
    "lon": -74.006,
    "eph": 17.1,
    "track": 365.0,
    "speed": 10.0,
}


def line(report: dict[str, object]) -> bytes:
    return json.dumps(report).encode() + b"\n"


def test_a_3d_fix_with_its_time_accuracy_heading_and_speed() -> None:
    report = parse_line(line(TPV), now=99.0)
    assert isinstance(report, Report) and report.kind is FixKind.FIX_3D
    assert report.fix is not None
    assert (report.fix.lat, report.fix.lon) == (40.7128, -74.006)
    assert report.fix.ts == 1714564805.0
    assert (report.fix.accuracy_m, report.fix.heading_deg, report.fix.speed_mps) == (
        17.1,
        5.0,
        10.0,
    )


def test_without_a_fix_there_is_no_position() -> None:
    assert parse_line(line({"class": "TPV", "mode": 1}), 0) == Report(FixKind.NO_FIX, None)
    no_lat = {**TPV, "mode": 2, "lat": None}
    assert parse_line(line(no_lat), 0) == Report(FixKind.NO_FIX, None)
    assert parse_line(line({**TPV, "lat": 91.0}), 0) == Report(FixKind.NO_FIX, None)


def test_a_track_just_below_north_is_north() -> None:
    report = parse_line(line({**TPV, "track": -1e-20}), 0)
    assert isinstance(report, Report) and report.fix is not None
    assert report.fix.heading_deg == 0.0


def test_a_fix_without_time_takes_the_time_it_arrived() -> None:
    report = parse_line(line({k: v for k, v in TPV.items() if k != "time"}), now=42.0)
    assert isinstance(report, Report) and report.fix is not None and report.fix.ts == 42.0


def test_receivers_are_counted_and_other_reports_ignored() -> None:
    assert parse_line(line({"class": "DEVICES", "devices": []}), 0) == Devices(0)
    assert parse_line(line({"class": "DEVICES", "devices": [{"path": "/dev/ttyACM0"}]}), 0) == (
        Devices(1)
    )
    assert parse_line(line({"class": "SKY", "satellites": []}), 0) is None
    assert parse_line(b"not json\n", 0) is None
    assert parse_line(b"[1, 2]\n", 0) is None


@given(
    st.dictionaries(
        st.sampled_from(["class", "mode", "lat", "lon", "time", "eph", "epx", "track", "speed"]),
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    )
)
def test_any_report_parses_or_is_ignored_never_raises(report: dict[str, object]) -> None:
    parsed = parse_line(line({"class": "TPV", **report}), 1.0)
    if isinstance(parsed, Report) and parsed.fix is not None:
        assert -90 <= parsed.fix.lat <= 90 and parsed.kind in (FixKind.FIX_2D, FixKind.FIX_3D)
        assert 0 <= parsed.fix.heading_deg < 360 and parsed.fix.accuracy_m >= 0
