"""gpsd's JSON reports (https://gpsd.io/gpsd_json.html) -> the unit's fix. Pure: one line
in, one verdict out; no socket, no clock of its own."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime

from firmware_bridge.device import GpsFix
from protocol.models import FixKind

WATCH = b'?WATCH={"enable":true,"json":true}\n'
"""What a client sends gpsd to receive every report as a JSON line."""
LATEST_TS = 32503680000.0  # the contract's last timestamp (year 3000)
MODES = {0: FixKind.NO_FIX, 1: FixKind.NO_FIX, 2: FixKind.FIX_2D, 3: FixKind.FIX_3D}


@dataclass(frozen=True, slots=True)
class Report:
    """A time-position-velocity report: its fix kind, and the fix when there is one."""

    kind: FixKind
    fix: GpsFix | None


@dataclass(frozen=True, slots=True)
class Devices:
    """gpsd's list of receivers: none means no GPS is attached."""

    count: int


def parse_line(line: bytes, now: float) -> Report | Devices | None:
    """One line from gpsd; None for the reports a unit has no use for (VERSION, SKY, ...)
    and for anything that is not a well-formed report. `now` stands in for a TPV without
    a time of its own."""
    try:
        report = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(report, dict):
        return None
    match report.get("class"):
        case "TPV":
            return _tpv(report, now)
        case "DEVICES":
            devices = report.get("devices")
            return Devices(len(devices) if isinstance(devices, list) else 0)
    return None


def _tpv(report: dict[str, object], now: float) -> Report:
    mode = report.get("mode")
    kind = MODES.get(mode, FixKind.NO_FIX) if isinstance(mode, int) else FixKind.NO_FIX
    lat, lon = _number(report, "lat"), _number(report, "lon")
    if kind is FixKind.NO_FIX or lat is None or lon is None:
        return Report(FixKind.NO_FIX, None)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return Report(FixKind.NO_FIX, None)
    errors = [e for e in (_number(report, "epx"), _number(report, "epy")) if e is not None]

    fix = GpsFix(
        lat=lat,
        lon=lon,
        accuracy_m=min(1e5, max(0.0, _number(report, "eph") or max(errors, default=0.0))),
        heading_deg=_heading(_number(report, "track") or 0.0),
        speed_mps=min(200.0, max(0.0, _number(report, "speed") or 0.0)),
        ts=_time(report.get("time")) or now,
    )
    return Report(kind, fix)


def _number(report: dict[str, object], key: str) -> float | None:
    value = report.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _heading(track: float) -> float:
    heading = track % 360.0
    return 0.0 if heading >= 360.0 else heading  # -1e-20 % 360 rounds to 360


def _time(value: object) -> float | None:
    """gpsd's ISO 8601 UTC time ("2024-05-01T12:00:00.000Z") in epoch seconds."""
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (ValueError, OverflowError):
        return None
    return ts if 0 <= ts <= LATEST_TS else None
